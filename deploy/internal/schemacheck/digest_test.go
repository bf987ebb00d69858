package schemacheck

import (
	"path/filepath"
	"regexp"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// digestImage is an image named by digest: whoever can push a tag cannot
// change what it runs.
var digestImage = regexp.MustCompile(`^[^@\s]+@sha256:[0-9a-f]{64}$`)

// TestImagesPinnedByDigest holds every container of the Kubernetes
// examples to an image named by digest, as deployment.yaml's comment asks
// of the images that replace the examples'.
func TestImagesPinnedByDigest(t *testing.T) {
	objects := decodeManifests(t, strictDecoder(t), filepath.Join(testenv.RepoRoot(t), "deploy", "kubernetes"))
	pods := []corev1.PodSpec{
		only[*appsv1.Deployment](t, objects).Spec.Template.Spec,
		only[*batchv1.Job](t, objects).Spec.Template.Spec,
	}
	for _, pod := range pods {
		for _, c := range append(pod.InitContainers, pod.Containers...) {
			if !digestImage.MatchString(c.Image) {
				t.Errorf("container %s runs %q: name the image by digest (image@sha256:...)", c.Name, c.Image)
			}
		}
	}
}
