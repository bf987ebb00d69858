package schemacheck

import (
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// TestFernetctlJob checks the sharded fernetctl Job against what
// docs/fernetctl.md promises: an Indexed Job whose completions each run
// one shard, as many shards as completions, each pod with the
// Deployment's own sidecar beside fernetctl, and the DSN from a Secret.
func TestFernetctlJob(t *testing.T) {
	objects := decodeManifests(t, strictDecoder(t), filepath.Join(testenv.RepoRoot(t), "deploy", "kubernetes"))
	job := only[*batchv1.Job](t, objects)
	deployment := only[*appsv1.Deployment](t, objects)
	spec := job.Spec
	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion || spec.Completions == nil || spec.Parallelism == nil {
		t.Fatal("want an Indexed Job with completions and parallelism")
	}
	shards := *spec.Completions
	if *spec.Parallelism != shards {
		t.Errorf("parallelism %d, completions %d: the shards should run at once", *spec.Parallelism, shards)
	}
	pod := spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q: a pod failure policy needs Never", pod.RestartPolicy)
	}
	if len(pod.Containers) != 1 || pod.Containers[0].Name != "fernetctl" {
		t.Fatal("want one container, fernetctl")
	}
	tool := pod.Containers[0]

	// Each completion runs its own shard, of as many as there are
	// completions.
	var shardArg, sidecarArg string
	for _, a := range tool.Args {
		if v, ok := strings.CutPrefix(a, "--shard="); ok {
			shardArg = v
		}
		if v, ok := strings.CutPrefix(a, "--sidecar="); ok {
			sidecarArg = v
		}
	}
	if want := "$(JOB_COMPLETION_INDEX)/" + strconv.Itoa(int(shards)); shardArg != want {
		t.Errorf("--shard=%s, want %s", shardArg, want)
	}
	if len(tool.Args) == 0 || tool.Args[0] != "reencrypt" {
		t.Errorf("args %q: want the reencrypt command first", tool.Args)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range tool.Env {
		env[e.Name] = e
	}
	index := env["JOB_COMPLETION_INDEX"].ValueFrom
	if index == nil || index.FieldRef == nil || index.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Error("JOB_COMPLETION_INDEX must be declared from the completion-index annotation, to be usable in args")
	}
	if dsn := env["DATABASE_URL"].ValueFrom; dsn == nil || dsn.SecretKeyRef == nil {
		t.Error("DATABASE_URL must come from a Secret")
	}
	for _, a := range tool.Args {
		if strings.HasPrefix(a, "--dsn") {
			t.Errorf("%s: a DSN on the command line shows in ps; use DATABASE_URL", a)
		}
	}

	// The sidecar: the Deployment's, as a native sidecar, and fernetctl
	// talks to it on the pod's loopback.
	sidecar := nativeSidecar(t, &pod)
	if sidecarArg != "localhost:50051" {
		t.Errorf("--sidecar=%s, want localhost:50051", sidecarArg)
	}
	var theirs corev1.Container
	for _, c := range deployment.Spec.Template.Spec.InitContainers {
		if c.Name == "fernet-sidecar" {
			theirs = c
		}
	}
	same := func(what string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			t.Errorf("the Job's sidecar %s differ from the Deployment's", what)
		}
	}
	same("image", sidecar.Image, theirs.Image)
	same("env", sidecar.Env, theirs.Env)
	same("ports", sidecar.Ports, theirs.Ports)
	same("probes", []any{sidecar.StartupProbe, sidecar.ReadinessProbe, sidecar.LivenessProbe}, []any{theirs.StartupProbe, theirs.ReadinessProbe, theirs.LivenessProbe})
	same("security context", sidecar.SecurityContext, theirs.SecurityContext)
	same("volume mounts", sidecar.VolumeMounts, theirs.VolumeMounts)
	volume := func(spec corev1.PodSpec, name string) *corev1.VolumeSource {
		for _, v := range spec.Volumes {
			if v.Name == name {
				return &v.VolumeSource
			}
		}
		return nil
	}
	for _, m := range sidecar.VolumeMounts {
		same("volume "+m.Name, volume(pod, m.Name), volume(deployment.Spec.Template.Spec, m.Name))
	}
	// No fsGroup of the sidecar's: the pod's fsGroup is every
	// container's, fernetctl's too.
	if psc := pod.SecurityContext; psc != nil && psc.FSGroup != nil && strconv.FormatInt(*psc.FSGroup, 10) == readImage(t, testenv.RepoRoot(t)).gid {
		t.Errorf("fsGroup %d is the sidecar's group: Kubernetes gives it to fernetctl's container too", *psc.FSGroup)
	}
	for _, m := range tool.VolumeMounts {
		if m.MountPath == "/etc/fernet" {
			t.Error("fernetctl mounts the keys; only the sidecar may")
		}
	}
	if tool.SecurityContext == nil || tool.SecurityContext.ReadOnlyRootFilesystem == nil || !*tool.SecurityContext.ReadOnlyRootFilesystem {
		t.Error("fernetctl: want a read-only root filesystem (its checkpoint goes to an emptyDir)")
	}
}
