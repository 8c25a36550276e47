package membership

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// DescribeStates lists every group state the membership actor pid holds
// (node@version, d for down, s for suspected), for test diagnostics.
func DescribeStates(root *actor.RootContext, pid *actor.PID) string {
	res, err := root.RequestFuture(pid, &describeStates{}, 5*time.Second).Result()
	if err != nil {
		return err.Error()
	}
	return res.(string)
}

// MuteBroadcasts stops the membership actor pid sending Plumtree
// messages: its broadcasts never get out.
func MuteBroadcasts(root *actor.RootContext, pid *actor.PID) {
	root.Send(pid, &muteBroadcasts{})
}
