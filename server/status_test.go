package server

import (
	"testing"

	fernetv1 "github.com/fernet-sidecar/fernet-sidecar/proto/fernet/v1"
)

func TestGetStatus(t *testing.T) {
	ts := startServer(t, DefaultLimits)
	resp, err := ts.client.GetStatus(ctx(t), &fernetv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	ids := resp.GetDecryptOnlyKeyIds()
	if resp.GetPrimaryKeyId() != ts.primary.ID() || len(ids) != 1 || ids[0] != ts.old.ID() || resp.GetVersion() != "test" {
		t.Fatalf("GetStatus = %v, want primary %s, decrypt-only [%s], version test", resp, ts.primary.ID(), ts.old.ID())
	}
}
