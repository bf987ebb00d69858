package schemacheck

import (
	"path/filepath"
	"regexp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// digestImage is an image named by digest: whoever can push a tag cannot
// change what it runs.
var digestImage = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// TestImagesPinnedByDigest holds every container of the Kubernetes
// examples to an image named by digest, as deployment.yaml's comment asks
// of the images that replace the examples'.
func TestImagesPinnedByDigest(t *testing.T) {
	objects := decodeManifests(t, strictDecoder(t), filepath.Join(repoRoot(t), "deploy", "kubernetes"))
	var pods []corev1.PodSpec
	for _, objs := range objects {
		for _, obj := range objs {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				pods = append(pods, o.Spec.Template.Spec)
			case *batchv1.Job:
				pods = append(pods, o.Spec.Template.Spec)
			}
		}
	}
	if len(pods) < 2 {
		t.Fatalf("%d pod templates, want the Deployment's and the Job's", len(pods))
	}
	for _, pod := range pods {
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			if !digestImage.MatchString(c.Image) {
				t.Errorf("container %s runs %q: name the image by digest (image@sha256:...)", c.Name, c.Image)
			}
		}
	}
}
