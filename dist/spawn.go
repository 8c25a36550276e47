// Remote spawn: kinds this node lets peers spawn, and the controller's
// half of the SpawnRequest / SpawnResponse exchange on the control stream.
//
// Ownership: kinds are guarded by Manager.kindsMu; pending spawns belong
// to the controller and are touched only from its Receive.

package dist

import (
	"context"
	"errors"
	"fmt"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/cask-p2p/cask/proto/caskpb"
)

// SpawnRemote spawns an actor of a kind registered on node.
func (m *Manager) SpawnRemote(ctx context.Context, node, kind, name string) (*actor.PID, error) {
	if err := m.checkPeer(node); err != nil {
		return nil, peerErr("spawn", node, err)
	}
	res, err := m.request(ctx, &Spawn{Node: node, Kind: kind, Name: name})
	if err != nil {
		return nil, peerErr("spawn", node, err)
	}
	r := res.(*SpawnResult)
	return r.PID, r.Err
}

// RegisterKind makes props spawnable by peers under kind.
func (m *Manager) RegisterKind(kind string, props *actor.Props) error {
	if kind == "" || props == nil {
		return errors.New("dist: RegisterKind needs a kind name and props")
	}
	m.kindsMu.Lock()
	defer m.kindsMu.Unlock()
	if _, ok := m.kinds[kind]; ok {
		return fmt.Errorf("dist: kind %q already registered", kind)
	}
	m.kinds[kind] = props
	return nil
}

func (m *Manager) kind(name string) *actor.Props {
	m.kindsMu.RLock()
	defer m.kindsMu.RUnlock()
	return m.kinds[name]
}

type pendingSpawn struct {
	msg     *Spawn
	replyTo *actor.PID
}

func (c *controller) flushSpawns() {
	s := c.sess
	for _, p := range c.spawnWait {
		c.spawnSeq++
		id := c.spawnSeq
		err := s.sendControl(&caskpb.Control{Body: &caskpb.Control_SpawnRequest{SpawnRequest: &caskpb.SpawnRequest{
			RequestId: id, Kind: p.msg.Kind, Name: p.msg.Name,
		}}})
		if err != nil {
			c.m.system.Root.Send(p.replyTo, &SpawnResult{Err: peerErr("spawn", c.peer, ErrConnectionLost)})
			continue
		}
		if p.replyTo != nil {
			c.spawns[id] = p.replyTo
		}
	}
	c.spawnWait = nil
}

func (c *controller) onSpawnRequest(r *spawnRequest) {
	req := r.req
	resp := &caskpb.SpawnResponse{RequestId: req.GetRequestId()}
	props := c.m.kind(req.GetKind())
	switch {
	case props == nil:
		resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_UNKNOWN_KIND, "kind "+req.GetKind()+" is not registered"
	case req.GetName() == "":
		resp.PidId = c.m.system.Root.Spawn(props).Id
	default:
		pid, err := c.m.system.Root.SpawnNamed(props, req.GetName())
		switch {
		case errors.Is(err, actor.ErrNameExists):
			resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_NAME_TAKEN, "name "+req.GetName()+" is taken"
		case err != nil:
			resp.Error, resp.Detail = caskpb.SpawnError_SPAWN_ERROR_FAILED, err.Error()
		default:
			resp.PidId = pid.Id
		}
	}
	if resp.Error != caskpb.SpawnError_SPAWN_ERROR_NONE {
		c.m.log.Info("refused remote spawn", c.log("kind", req.GetKind(), "name", req.GetName(), "detail", resp.Detail)...)
	}
	_ = r.s.sendControl(&caskpb.Control{Body: &caskpb.Control_SpawnResponse{SpawnResponse: resp}})
}

func (c *controller) onSpawnResponse(r *spawnResponse) {
	resp := r.resp
	reply, ok := c.spawns[resp.GetRequestId()]
	if !ok {
		return
	}
	delete(c.spawns, resp.GetRequestId())
	var res SpawnResult
	switch resp.GetError() {
	case caskpb.SpawnError_SPAWN_ERROR_NONE:
		res.PID = actor.NewPID(c.peer, resp.GetPidId())
	case caskpb.SpawnError_SPAWN_ERROR_UNKNOWN_KIND:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrUnknownKind, resp.GetDetail()))
	case caskpb.SpawnError_SPAWN_ERROR_NAME_TAKEN:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrNameTaken, resp.GetDetail()))
	default:
		res.Err = peerErr("spawn", c.peer, fmt.Errorf("%w: %s", ErrSpawnFailed, resp.GetDetail()))
	}
	c.m.system.Root.Send(reply, &res)
}
