package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/cask-p2p/cask/proto/caskpb"
	"github.com/cask-p2p/cask/transport"
)

// Frame limits. Each handshake frame is a transport frame (uvarint length,
// then the bytes) holding one caskpb.AuthFrame.
const (
	// MaxFrameSize caps one identity handshake frame.
	MaxFrameSize = 4 << 10

	nonceSize       = 32
	maxRejectDetail = 256
)

// appendAuthFrames appends the transport frames of frames to dst.
func appendAuthFrames(dst []byte, frames ...*caskpb.AuthFrame) ([]byte, error) {
	for _, f := range frames {
		b, err := proto.Marshal(f)
		if err != nil {
			return nil, fmt.Errorf("identity: encode handshake frame: %w", err)
		}
		dst = transport.AppendFrame(dst, b)
	}
	return dst, nil
}

func okFrame() *caskpb.AuthFrame {
	return &caskpb.AuthFrame{Body: &caskpb.AuthFrame_Result{Result: &caskpb.AuthResult{Ok: true}}}
}

// decodeAuthFrame decodes one identity handshake frame and checks the
// shape of its body (sizes, presence, node names); it does not judge trust.
func decodeAuthFrame(b []byte) (*caskpb.AuthFrame, error) {
	var f caskpb.AuthFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	switch body := f.GetBody().(type) {
	case *caskpb.AuthFrame_Hello:
		hl := body.Hello
		if hl == nil {
			return nil, errors.New("empty hello")
		}
		if err := ValidateNodeName(hl.GetNode()); err != nil {
			return nil, err
		}
		if len(hl.GetPublicKey()) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("public key is %d bytes, want %d", len(hl.GetPublicKey()), ed25519.PublicKeySize)
		}
		if hl.GetMinVersion() > hl.GetMaxVersion() || hl.GetMinVersion() == 0 {
			return nil, fmt.Errorf("bad version range %d..%d", hl.GetMinVersion(), hl.GetMaxVersion())
		}
		if t := hl.GetToNode(); t != "" {
			if err := ValidateNodeName(t); err != nil {
				return nil, fmt.Errorf("to_node: %w", err)
			}
		}
	case *caskpb.AuthFrame_Challenge:
		if err := checkChallenge(body.Challenge); err != nil {
			return nil, err
		}
	case *caskpb.AuthFrame_Response:
		r := body.Response
		switch {
		case r == nil:
			return nil, errors.New("empty response")
		case len(r.GetSignature()) != ed25519.SignatureSize:
			return nil, fmt.Errorf("signature is %d bytes, want %d", len(r.GetSignature()), ed25519.SignatureSize)
		case len(r.GetNonce()) != nonceSize:
			return nil, fmt.Errorf("echoed nonce is %d bytes, want %d", len(r.GetNonce()), nonceSize)
		case len(r.GetBindingDigest()) != sha256.Size:
			return nil, fmt.Errorf("binding digest is %d bytes, want %d", len(r.GetBindingDigest()), sha256.Size)
		case len(r.GetClusterProof()) != 0 && len(r.GetClusterProof()) != sha256.Size:
			return nil, fmt.Errorf("cluster proof is %d bytes, want %d", len(r.GetClusterProof()), sha256.Size)
		}
	case *caskpb.AuthFrame_Result:
		if body.Result == nil {
			return nil, errors.New("empty result")
		}
		if len(body.Result.GetDetail()) > 4*maxRejectDetail {
			return nil, errors.New("result detail too long")
		}
	default:
		return nil, errors.New("no body")
	}
	return &f, nil
}

func checkChallenge(c *caskpb.AuthChallenge) error {
	if c == nil {
		return errors.New("empty challenge")
	}
	if len(c.GetNonce()) != nonceSize {
		return fmt.Errorf("nonce is %d bytes, want %d", len(c.GetNonce()), nonceSize)
	}
	return nil
}

func authFrameKind(f *caskpb.AuthFrame) string {
	switch f.GetBody().(type) {
	case *caskpb.AuthFrame_Hello:
		return "hello"
	case *caskpb.AuthFrame_Challenge:
		return "challenge"
	case *caskpb.AuthFrame_Response:
		return "response"
	case *caskpb.AuthFrame_Result:
		return "result"
	}
	return "nothing"
}

// truncateDetail cuts a REJECT's detail to maxRejectDetail bytes.
func truncateDetail(s string) string {
	if len(s) > maxRejectDetail {
		return s[:maxRejectDetail]
	}
	return s
}
