package schemacheck

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/fernet-sidecar/fernet-sidecar/internal/testenv"
)

// strictDecoder decodes the kinds the manifests may hold, as the API
// server's strict field validation does: an unknown or duplicate field is
// an error.
func strictDecoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme, monitoringv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeManifests decodes every document of every YAML file under dir.
func decodeManifests(t *testing.T, decoder runtime.Decoder, dir string) map[string][]runtime.Object {
	t.Helper()
	objects := map[string][]runtime.Object{} // by file, relative to dir
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			t.Errorf("%s: not a manifest; only .yaml files belong in %s", path, dir)
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		docs, err := splitYAML(readFile(t, path))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		for i, doc := range docs {
			obj, _, err := decoder.Decode(doc, nil, nil)
			if err != nil {
				t.Errorf("%s, document %d: %v", rel, i+1, err)
				continue
			}
			objects[rel] = append(objects[rel], obj)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return objects
}

// splitYAML splits a multi-document YAML file, dropping documents that hold
// only comments.
func splitYAML(text string) ([][]byte, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	var docs [][]byte
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return nil, err
		}
		if len(probe) > 0 {
			docs = append(docs, doc)
		}
	}
}

// TestStrictDecoderRefuses shows that the decoder the manifests pass is
// strict: a misspelt or duplicated field, or an unknown kind, fails.
func TestStrictDecoderRefuses(t *testing.T) {
	decoder := strictDecoder(t)
	for name, doc := range map[string]string{
		"unknown field":     "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringdata: {a: b}\n",
		"duplicate field":   "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\ntype: Opaque\ntype: Opaque\n",
		"nested unknown":    "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: a, image: b, readinessprobe: {}}]}}}\n",
		"unknown kind":      "apiVersion: v1\nkind: Sekret\nmetadata: {name: x}\n",
		"monitoring typo":   "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: x}\nspec: {endpoint: []}\n",
		"bad quantity":      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, resources: {limits: {memory: 128MB}}}]}\n",
		"string for number": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b, ports: [{containerPort: \"9464\"}]}]}\n",
	} {
		if _, _, err := decoder.Decode([]byte(doc), nil, nil); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// only is the one object of type T in objects; none, or a second one,
// fails the test.
func only[T runtime.Object](t *testing.T, objects map[string][]runtime.Object) T {
	t.Helper()
	var found []T
	var files []string
	for file, objs := range objects {
		for _, obj := range objs {
			if o, ok := obj.(T); ok {
				found = append(found, o)
				files = append(files, file)
			}
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want one %T in deploy/kubernetes, have %d (in %v)", zero, len(found), files)
	}
	return found[0]
}

// TestKubernetesManifests decodes every manifest under deploy/kubernetes
// strictly and checks what the example promises: a native sidecar probed
// with gRPC on its health port, keys from a Secret mounted as files that
// only the sidecar sees, the metrics port where Prometheus looks, the
// security context, resources as measured, alert rules as in
// deploy/prometheus/alerts.yaml.
func TestKubernetesManifests(t *testing.T) {
	root := testenv.RepoRoot(t)
	img := readImage(t, root)
	objects := decodeManifests(t, strictDecoder(t), filepath.Join(root, "deploy", "kubernetes"))

	for file, objs := range objects {
		for _, obj := range objs {
			switch obj.(type) {
			case *appsv1.Deployment, *corev1.Secret, *corev1.Service, *monitoringv1.ServiceMonitor,
				*monitoringv1.PrometheusRule, *networkingv1.NetworkPolicy, *batchv1.Job: // the Job: TestFernetctlJob
			default:
				t.Errorf("%s: unexpected %T", file, obj)
			}
		}
	}
	deployment := only[*appsv1.Deployment](t, objects)
	secret := only[*corev1.Secret](t, objects)
	service := only[*corev1.Service](t, objects)
	monitor := only[*monitoringv1.ServiceMonitor](t, objects)
	rules := only[*monitoringv1.PrometheusRule](t, objects)
	policy := only[*networkingv1.NetworkPolicy](t, objects)
	// The Secret example must not be applied with the rest.
	for file, objs := range objects {
		if filepath.Dir(file) == "." {
			for _, obj := range objs {
				if _, isSecret := obj.(*corev1.Secret); isSecret {
					t.Errorf("%s: a Secret beside deployment.yaml: `kubectl apply -f deploy/kubernetes/` would overwrite the real keys", file)
				}
			}
		}
	}

	pod := deployment.Spec.Template
	selector, err := metav1LabelSelector(deployment)
	if err != nil || !selector.Matches(labels.Set(pod.Labels)) {
		t.Errorf("the Deployment's selector %v does not select its own pods %v (%v)", deployment.Spec.Selector, pod.Labels, err)
	}
	spec := pod.Spec
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("automountServiceAccountToken: want false; neither container needs the API")
	}

	// The sidecar: a native sidecar container.
	sidecar := nativeSidecar(t, &spec)
	if len(spec.Containers) != 1 {
		t.Fatalf("want one app container, have %d", len(spec.Containers))
	}
	app := spec.Containers[0]
	env := envMap(t, sidecar)

	// Addresses: the manifest spells out the image's, the API stays on
	// loopback, and the app is pointed at it.
	if addr, set := env["FERNET_SIDECAR_ADDR"]; set {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" && host != "localhost" {
			t.Errorf("FERNET_SIDECAR_ADDR=%s: the API must stay on the pod's loopback", addr)
		}
	}
	if env["FERNET_SIDECAR_HEALTH_ADDR"] != img.healthAddr || env["FERNET_SIDECAR_METRICS_ADDR"] != img.metricsAddr {
		t.Errorf("health and metrics addresses %q, %q: the comment says they are the image's, %q and %q",
			env["FERNET_SIDECAR_HEALTH_ADDR"], env["FERNET_SIDECAR_METRICS_ADDR"], img.healthAddr, img.metricsAddr)
	}
	healthPort := port(t, env["FERNET_SIDECAR_HEALTH_ADDR"])
	metricsPort := port(t, env["FERNET_SIDECAR_METRICS_ADDR"])
	appEnv := envMap(t, &app)
	if appEnv["FERNET_SIDECAR_TARGET"] != "localhost:50051" {
		t.Errorf("the app's FERNET_SIDECAR_TARGET is %q, want localhost:50051", appEnv["FERNET_SIDECAR_TARGET"])
	}

	// Probes: all three, gRPC, on the health port, which the sidecar
	// declares.
	for name, probe := range map[string]*corev1.Probe{"startupProbe": sidecar.StartupProbe, "readinessProbe": sidecar.ReadinessProbe, "livenessProbe": sidecar.LivenessProbe} {
		switch {
		case probe == nil:
			t.Errorf("the sidecar has no %s", name)
		case probe.GRPC == nil || probe.HTTPGet != nil || probe.Exec != nil || probe.TCPSocket != nil:
			t.Errorf("%s: want a gRPC probe (grpc.health.v1) and nothing else", name)
		case probe.GRPC.Port != healthPort:
			t.Errorf("%s probes port %d; the sidecar serves health on %d", name, probe.GRPC.Port, healthPort)
		case probe.GRPC.Service != nil && *probe.GRPC.Service != "":
			t.Errorf("%s asks for service %q; the health-only port answers for \"\"", name, *probe.GRPC.Service)
		}
	}
	declared := map[int32]string{}
	for _, p := range sidecar.Ports {
		declared[p.ContainerPort] = p.Name
		if len(p.Name) > 15 {
			t.Errorf("port name %q is longer than Kubernetes' 15 characters", p.Name)
		}
	}
	if _, ok := declared[healthPort]; !ok {
		t.Errorf("the sidecar does not declare its health port %d", healthPort)
	}
	if _, ok := declared[50051]; ok {
		t.Error("the sidecar declares port 50051: the API is on loopback and is not a pod port")
	}

	// Keys: the *_FILE variables name files in a read-only, whole-directory
	// mount of the Secret, which only the sidecar mounts; no key in env.
	for _, name := range []string{"DJANGO_ENCRYPTION_KEY", "OLD_DJANGO_ENCRYPTION_KEY"} {
		if _, set := env[name]; set {
			t.Errorf("%s is set directly: keys come from files, which hot reload follows", name)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	var keyVolume string
	for _, name := range []string{"DJANGO_ENCRYPTION_KEY_FILE", "OLD_DJANGO_ENCRYPTION_KEY_FILE"} {
		path, set := env[name]
		if !set {
			t.Errorf("%s is not set", name)
			continue
		}
		var mount *corev1.VolumeMount
		for i, m := range sidecar.VolumeMounts {
			if filepath.Dir(path) == filepath.Clean(m.MountPath) {
				mount = &sidecar.VolumeMounts[i]
			}
		}
		if mount == nil {
			t.Errorf("%s=%s is in no volume mount of the sidecar", name, path)
			continue
		}
		if mount.SubPath != "" || mount.SubPathExpr != "" {
			t.Errorf("%s: a subPath mount is never updated, so keys would not reload", mount.Name)
		}
		if !mount.ReadOnly {
			t.Errorf("%s: mount it readOnly", mount.Name)
		}
		v := volumes[mount.Name]
		if v.Secret == nil || v.Secret.SecretName != secret.Name {
			t.Errorf("%s=%s: volume %s is not the Secret %s", name, path, mount.Name, secret.Name)
			continue
		}
		if len(v.Secret.Items) > 0 {
			t.Errorf("volume %s lists items; the whole Secret is mounted so that a key added in a rotation appears", mount.Name)
		}
		key := filepath.Base(path)
		_, inData := secret.Data[key]
		if _, inString := secret.StringData[key]; !inData && !inString {
			t.Errorf("%s=%s: the Secret has no entry %q", name, path, key)
		}
		keyVolume = mount.Name
	}
	if v, ok := volumes[keyVolume]; ok && v.Secret != nil {
		mode := int32(0o644)
		if v.Secret.DefaultMode != nil {
			mode = *v.Secret.DefaultMode
		}
		// The files belong to root and nobody may change them; the
		// sidecar reads them as "other", in a volume no other container
		// mounts (checked below). No fsGroup of the sidecar's: the pod's
		// fsGroup is every container's, the app's too.
		if mode&0o222 != 0 || mode&0o004 == 0 {
			t.Errorf("key files with mode %#o: want read-only, and readable by the sidecar as other (0444)", mode)
		}
	}
	if psc := spec.SecurityContext; psc != nil && psc.FSGroup != nil && strconv.FormatInt(*psc.FSGroup, 10) == img.gid {
		t.Errorf("fsGroup %d is the sidecar's group: Kubernetes gives it to the app container too", *psc.FSGroup)
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if c.Name == sidecar.Name {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == keyVolume {
				t.Errorf("container %s mounts the keys: only the sidecar may", c.Name)
			}
		}
	}

	// The example Secret must not hold anything that works as a key.
	for key, value := range secret.StringData {
		if looksLikeKey(value) {
			t.Errorf("the example Secret's %q looks like a real key: put a placeholder there", key)
		}
	}
	for key, value := range secret.Data {
		if looksLikeKey(string(value)) {
			t.Errorf("the example Secret's %q looks like a real key: put a placeholder there", key)
		}
	}

	// Security context, on every container, and the sidecar's user is the
	// image's.
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("pod securityContext: want runAsNonRoot and seccompProfile RuntimeDefault")
	}
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", c.Name)
			continue
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s: want runAsNonRoot", c.Name)
		case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
			t.Errorf("%s: want readOnlyRootFilesystem", c.Name)
		case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s: want allowPrivilegeEscalation: false", c.Name)
		case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s: want capabilities drop [ALL] and nothing added", c.Name)
		case sc.Privileged != nil && *sc.Privileged:
			t.Errorf("%s: privileged", c.Name)
		}
	}
	ssc := sidecar.SecurityContext
	if ssc.RunAsUser == nil || strconv.FormatInt(*ssc.RunAsUser, 10) != img.uid ||
		ssc.RunAsGroup == nil || strconv.FormatInt(*ssc.RunAsGroup, 10) != img.gid {
		t.Errorf("the sidecar runs as %v:%v; the image's user is %s:%s", ssc.RunAsUser, ssc.RunAsGroup, img.uid, img.gid)
	}
	if ssc.SeccompProfile == nil || ssc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Error("the sidecar: want seccompProfile RuntimeDefault")
	}

	// Resources: requests and a memory limit, as docs/deployment.md
	// reports them; GOMEMLIMIT under the limit.
	res := sidecar.Resources
	cpuReq, memReq, memLimit := res.Requests[corev1.ResourceCPU], res.Requests[corev1.ResourceMemory], res.Limits[corev1.ResourceMemory]
	if cpuReq.IsZero() || memReq.IsZero() || memLimit.IsZero() || memReq.Cmp(memLimit) > 0 {
		t.Errorf("sidecar resources %v: want cpu and memory requests, and a memory limit above the request", res)
	}
	if _, cpuLimit := res.Limits[corev1.ResourceCPU]; cpuLimit {
		t.Error("a CPU limit throttles every call the app waits on; the docs say why there is none")
	}
	docs := readFile(t, filepath.Join(root, "docs", "deployment.md"))
	for _, q := range []resource.Quantity{cpuReq, memReq, memLimit} {
		if !strings.Contains(docs, "`"+q.String()+"`") {
			t.Errorf("docs/deployment.md does not give the figure %s the manifest uses", q.String())
		}
	}
	if limit, err := goMemLimit(env["GOMEMLIMIT"]); err != nil || limit >= memLimit.Value() {
		t.Errorf("GOMEMLIMIT=%q (%v): want a soft limit under the memory limit %s", env["GOMEMLIMIT"], err, memLimit.String())
	}

	// Metrics: annotations and the ServiceMonitor's Service point at the
	// port the sidecar serves metrics on.
	ann := pod.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(metricsPort)) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("prometheus.io annotations %v: want scrape true, port %d, path /metrics", ann, metricsPort)
	}
	if _, ok := declared[metricsPort]; !ok {
		t.Errorf("the sidecar does not declare its metrics port %d", metricsPort)
	}
	if !labels.SelectorFromSet(service.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(service.Spec.Selector) == 0 {
		t.Errorf("Service %s selects %v, not the Deployment's pods %v", service.Name, service.Spec.Selector, pod.Labels)
	}
	var servicePort *corev1.ServicePort
	for i, p := range service.Spec.Ports {
		if p.TargetPort.IntValue() == int(metricsPort) {
			servicePort = &service.Spec.Ports[i]
		}
	}
	if servicePort == nil {
		t.Fatalf("Service %s has no port targeting the metrics port %d (by number: named ports of init containers may not resolve)", service.Name, metricsPort)
	}
	monitorSelector, err := metav1Selector(&monitor.Spec.Selector)
	if err != nil || !monitorSelector.Matches(labels.Set(service.Labels)) {
		t.Errorf("ServiceMonitor %s selects %v, not Service %s %v (%v)", monitor.Name, monitor.Spec.Selector, service.Name, service.Labels, err)
	}
	if len(monitor.Spec.Endpoints) != 1 || monitor.Spec.Endpoints[0].Port != servicePort.Name {
		t.Errorf("ServiceMonitor endpoints %v: want one, on the Service's port %q", monitor.Spec.Endpoints, servicePort.Name)
	} else if path := monitor.Spec.Endpoints[0].Path; path != "" && path != "/metrics" {
		t.Errorf("ServiceMonitor path %q, want /metrics", path)
	}

	checkNetworkPolicy(t, policy, pod.Labels, healthPort, metricsPort)

	// The PrometheusRule is alerts.yaml, rule for rule.
	var plain struct {
		Groups []monitoringv1.RuleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict([]byte(readFile(t, filepath.Join(root, "deploy", "prometheus", "alerts.yaml"))), &plain); err != nil {
		t.Fatalf("deploy/prometheus/alerts.yaml: %v", err)
	}
	if len(plain.Groups) == 0 || !reflect.DeepEqual(plain.Groups, rules.Spec.Groups) {
		t.Errorf("the PrometheusRule's groups differ from deploy/prometheus/alerts.yaml; copy them over")
	}
}

// nativeSidecar returns the pod's init container named fernet-sidecar,
// and fails t unless it is a native sidecar (restartPolicy: Always).
func nativeSidecar(t *testing.T, pod *corev1.PodSpec) *corev1.Container {
	t.Helper()
	var sidecar *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == "fernet-sidecar" {
			sidecar = &pod.InitContainers[i]
		}
	}
	if sidecar == nil || sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Fatal("want the sidecar as an init container named fernet-sidecar with restartPolicy: Always (a native sidecar)")
	}
	return sidecar
}

func envMap(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s: %s set twice", c.Name, e.Name)
		}
		if e.ValueFrom != nil {
			t.Errorf("%s: %s from a reference; this example sets values", c.Name, e.Name)
		}
		env[e.Name] = e.Value
	}
	return env
}

func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(p)
	if err != nil || perr != nil {
		t.Fatalf("address %q has no port", addr)
	}
	return int32(n)
}

// looksLikeKey reports whether s parses as a Fernet key in a form the
// sidecar accepts (base64 of 32 bytes, or 64 hex characters).
func looksLikeKey(s string) bool {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.URLEncoding, base64.StdEncoding} {
		if raw, err := enc.DecodeString(s); err == nil && len(raw) == 32 {
			return true
		}
	}
	raw, err := hex.DecodeString(s)
	return err == nil && len(raw) == 32
}

// goMemLimit parses GOMEMLIMIT as the Go runtime does: a number of bytes
// with an optional B, KiB, MiB, GiB or TiB suffix.
func goMemLimit(s string) (int64, error) {
	units := []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v * u.factor, err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func metav1LabelSelector(d *appsv1.Deployment) (labels.Selector, error) {
	if d.Spec.Selector == nil {
		return nil, errors.New("no selector")
	}
	return metav1Selector(d.Spec.Selector)
}

func metav1Selector(s *metav1.LabelSelector) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(s)
}

// checkNetworkPolicy: the policy selects the pods, lets only a namespace
// selector (Prometheus's) reach metrics, and no one reach health (the
// kubelet's probes come from the node, which a policy never blocks).
func checkNetworkPolicy(t *testing.T, policy *networkingv1.NetworkPolicy, podLabels map[string]string, healthPort, metricsPort int32) {
	t.Helper()
	selector, err := metav1Selector(&policy.Spec.PodSelector)
	if err != nil || !selector.Matches(labels.Set(podLabels)) {
		t.Errorf("NetworkPolicy %s selects %v, not the Deployment's pods %v", policy.Name, policy.Spec.PodSelector, podLabels)
	}
	if !slices.Contains(policy.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
		t.Errorf("NetworkPolicy %s: want policyTypes Ingress", policy.Name)
	}
	metricsRules := 0
	for i, rule := range policy.Spec.Ingress {
		admits := func(port int32) bool {
			if len(rule.Ports) == 0 {
				return true
			}
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.IntValue() == int(port) {
					return true
				}
			}
			return false
		}
		if admits(healthPort) {
			t.Errorf("NetworkPolicy %s, rule %d admits the health port %d: only the kubelet may reach it", policy.Name, i+1, healthPort)
		}
		if !admits(metricsPort) {
			continue
		}
		metricsRules++
		if len(rule.From) == 0 {
			t.Errorf("NetworkPolicy %s, rule %d admits the metrics port from anywhere", policy.Name, i+1)
		}
		for _, peer := range rule.From {
			if peer.NamespaceSelector == nil || len(peer.NamespaceSelector.MatchLabels)+len(peer.NamespaceSelector.MatchExpressions) == 0 || peer.IPBlock != nil {
				t.Errorf("NetworkPolicy %s, rule %d: the metrics port must be reached only from a named namespace (Prometheus's)", policy.Name, i+1)
			}
		}
	}
	if metricsRules == 0 {
		t.Errorf("NetworkPolicy %s lets no one reach the metrics port %d: Prometheus could not scrape", policy.Name, metricsPort)
	}
}
