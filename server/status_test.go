package server

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

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

// TestGetStatusReportsLimits: clients size their batches from these.
func TestGetStatusReportsLimits(t *testing.T) {
	limits := Limits{MaxPlaintextBytes: 1000, MaxBatchItems: 7}
	ts := startServer(t, limits)
	resp, err := ts.client.GetStatus(ctx(t), &fernetv1.GetStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := &fernetv1.ServerLimits{MaxPlaintextBytes: 1000, MaxTokenBytes: uint64(limits.maxTokenBytes()), MaxBatchItems: 7, MaxMessageBytes: 4 << 20}
	if !proto.Equal(resp.GetLimits(), want) {
		t.Errorf("limits = %v, want %v", resp.GetLimits(), want)
	}
	if !slices.Equal(resp.GetAllowedMethods(), FernetMethods()) || len(FernetMethods()) != 11 {
		t.Errorf("allowed methods = %v, want all 11: %v", resp.GetAllowedMethods(), FernetMethods())
	}
}
