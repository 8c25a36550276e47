package identity

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// FuzzDecodeAuthFrame: decodeAuthFrame never panics, and a frame it
// accepts re-encodes to one it accepts again, unchanged.
func FuzzDecodeAuthFrame(f *testing.F) {
	keys := testKeys("a@host")
	for _, fr := range []*caskpb.AuthFrame{
		{Body: &caskpb.AuthFrame_Hello{Hello: &caskpb.AuthHello{Node: "a@host", PublicKey: keys.PublicKey(), MinVersion: 1, MaxVersion: 1, ToNode: "b@host"}}},
		{Body: &caskpb.AuthFrame_Challenge{Challenge: &caskpb.AuthChallenge{Nonce: make([]byte, nonceSize), Timestamp: 12345}}},
		{Body: &caskpb.AuthFrame_Response{Response: &caskpb.AuthResponse{
			Signature: keys.sign([]byte("x")), Nonce: make([]byte, nonceSize), Timestamp: 12345,
			BindingDigest: bindingDigest(make([]byte, 32)), ClusterProof: clusterProof([]byte("s"), transport.RoleDialer, make([]byte, 32), keys.PublicKey()),
		}}},
		okFrame(),
		{Body: &caskpb.AuthFrame_Result{Result: &caskpb.AuthResult{Reason: caskpb.AuthRejectReason_AUTH_REJECT_REASON_KEY_MISMATCH, Detail: "presented X"}}},
	} {
		b, err := proto.Marshal(fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeAuthFrame(b)
		if err != nil {
			return
		}
		again, err := proto.Marshal(fr)
		if err != nil {
			t.Fatalf("accepted frame does not re-encode: %v", err)
		}
		fr2, err := decodeAuthFrame(again)
		if err != nil {
			t.Fatalf("re-encoded frame rejected: %v", err)
		}
		if !proto.Equal(fr, fr2) {
			t.Fatalf("re-encoding changed the frame:\n%v\n%v", fr, fr2)
		}
	})
}
