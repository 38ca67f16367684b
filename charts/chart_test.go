// Package charts tests the Helm chart in charts/pulsar-sidecar: the rules
// copy, helm lint, every rendered manifest decoded strictly into the
// k8s.io/api types (kubeconform cannot download its schemas here), the
// rendered PrometheusRule through promtool, and (metrics_test.go) every
// metric the rules and the dashboard name in a live /metrics scrape.
//
// The helm and promtool tests skip, saying so, when the tool is missing;
// .ci/run installs both.
package charts

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	serializerjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

const (
	chartDir  = "pulsar-sidecar"
	rulesDoc  = "../docs/alerts/pulsar-sidecar.rules.yml"
	rulesCopy = "pulsar-sidecar/files/pulsar-sidecar.rules.yml"
	dashboard = "pulsar-sidecar/files/dashboard.json"
)

// TestRulesCopyIsTheDocsFile: the chart's PrometheusRule is made from a copy
// of docs/alerts/pulsar-sidecar.rules.yml (Helm reads files inside the chart
// only); the docs file is the one source of truth and `make chart-rules`
// refreshes the copy.
func TestRulesCopyIsTheDocsFile(t *testing.T) {
	doc, err := os.ReadFile(rulesDoc)
	require.NoError(t, err)
	cp, err := os.ReadFile(rulesCopy)
	require.NoError(t, err)
	if !bytes.Equal(doc, cp) {
		t.Fatalf("%s differs from %s: run `make chart-rules` (the docs file is the source)", rulesCopy, rulesDoc)
	}
}

// tool finds a command on PATH or in GOPATH/bin (where `go install` puts
// helm), or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s is not installed: skipping (.ci/run installs it; helm: go install helm.sh/helm/v3/cmd/helm@v3.21.4, promtool: apt-get install prometheus)", name)
	return ""
}

func run(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

var valueFiles = []string{"", "ci/gateway-values.yaml", "ci/statefulset-values.yaml", "ci/sidecar-values.yaml"}

func TestHelmLint(t *testing.T) {
	helm := tool(t, "helm")
	for _, vf := range valueFiles {
		args := []string{"lint", "--strict", chartDir}
		if vf != "" {
			args = append(args, "-f", filepath.Join(chartDir, vf))
		}
		out, err := run(t, helm, args...)
		require.NoError(t, err, "helm %s:\n%s", strings.Join(args, " "), out)
	}
}

// decoder decodes Kubernetes YAML strictly (unknown and duplicate fields
// are errors) into the k8s.io/api types the chart uses.
func decoder(t *testing.T) runtime.Decoder {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme} {
		require.NoError(t, add(s))
	}
	return serializerjson.NewSerializerWithOptions(serializerjson.DefaultMetaFactory, s, s,
		serializerjson.SerializerOptions{Yaml: true, Strict: true})
}

// The Prometheus Operator's kinds are not in k8s.io/api: they are decoded
// strictly into these structs, which hold the fields of the operator's
// monitoring.coreos.com/v1 API that the chart writes.
type (
	objectMeta struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	endpoint struct {
		Port          string `json:"port"`
		Path          string `json:"path"`
		Interval      string `json:"interval"`
		ScrapeTimeout string `json:"scrapeTimeout"`
	}
	monitorSpec struct {
		Selector struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector"`
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Endpoints           []endpoint `json:"endpoints,omitempty"`
		PodMetricsEndpoints []endpoint `json:"podMetricsEndpoints,omitempty"`
	}
	monitor struct {
		APIVersion string      `json:"apiVersion"`
		Kind       string      `json:"kind"`
		Metadata   objectMeta  `json:"metadata"`
		Spec       monitorSpec `json:"spec"`
	}
	rule struct {
		Alert       string            `json:"alert,omitempty"`
		Record      string            `json:"record,omitempty"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	ruleGroup struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	}
	prometheusRule struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       struct {
			Groups []ruleGroup `json:"groups"`
		} `json:"spec"`
	}
)

// rendered is one `helm template` output, decoded.
type rendered struct {
	objects []runtime.Object
	monitor []monitor
	rules   []prometheusRule
	raw     map[string]string // kind/name -> YAML
}

func (r *rendered) kinds() []string {
	var ks []string
	for k := range r.raw {
		ks = append(ks, strings.SplitN(k, "/", 2)[0])
	}
	slices.Sort(ks)
	return slices.Compact(ks)
}

func render(t *testing.T, helm string, args ...string) *rendered {
	t.Helper()
	out, err := run(t, helm, append([]string{"template", "psc", "--namespace", "billing"}, args...)...)
	require.NoError(t, err, "helm template %v:\n%s", args, out)
	dec := decoder(t)
	r := &rendered{raw: map[string]string{}}
	for doc := range strings.SplitSeq(out, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &head))
		if head.Kind == "" {
			continue // comments only
		}
		r.raw[head.Kind+"/"+head.Metadata.Name] = doc
		switch head.Kind {
		case "ServiceMonitor", "PodMonitor":
			var m monitor
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &m), "%s/%s", head.Kind, head.Metadata.Name)
			require.Equal(t, "monitoring.coreos.com/v1", m.APIVersion)
			r.monitor = append(r.monitor, m)
		case "PrometheusRule":
			var pr prometheusRule
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &pr), "%s/%s", head.Kind, head.Metadata.Name)
			require.Equal(t, "monitoring.coreos.com/v1", pr.APIVersion)
			r.rules = append(r.rules, pr)
		default:
			obj, gvk, err := dec.Decode([]byte(doc), nil, nil)
			require.NoError(t, err, "%s/%s does not decode strictly into k8s.io/api:\n%s", head.Kind, head.Metadata.Name, doc)
			require.Equal(t, head.Kind, gvk.Kind)
			r.objects = append(r.objects, obj)
		}
	}
	return r
}

// checkPod holds what every pod that runs the sidecar must have.
func checkPod(t *testing.T, name string, spec corev1.PodSpec, wantProbe string) {
	t.Helper()
	require.NotNil(t, spec.SecurityContext, name)
	require.True(t, *spec.SecurityContext.RunAsNonRoot, "%s: pod runAsNonRoot", name)
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == "pulsar-sidecar" {
			c = &spec.Containers[i]
		}
	}
	require.NotNil(t, c, "%s has no pulsar-sidecar container", name)
	sc := c.SecurityContext
	require.NotNil(t, sc, name)
	require.True(t, *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", name)
	require.False(t, *sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation", name)
	require.True(t, *sc.RunAsNonRoot, "%s: runAsNonRoot", name)
	require.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, name)
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		require.NotNil(t, p, "%s: a probe is missing", name)
		switch wantProbe {
		case "http":
			require.NotNil(t, p.HTTPGet, "%s: want HTTP probes", name)
		case "exec":
			require.NotNil(t, p.Exec, "%s: want exec probes (loopback listener)", name)
			require.Equal(t, []string{"/usr/local/bin/pulsar-sidecar", "healthcheck"}, p.Exec.Command[:2])
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	for _, path := range []string{"/etc/pulsar-sidecar", "/var/lib/pulsar-sidecar", "/tmp"} {
		require.Contains(t, mounts, path, "%s: %s is not mounted (read-only root filesystem)", name, path)
	}
	require.Equal(t, []string{"--config", "/etc/pulsar-sidecar/config.yaml"}, c.Args, name)
}

// checkConfig: the rendered configuration file is one the sidecar accepts,
// and every Secret key is one of its environment variables.
func checkConfig(t *testing.T, r *rendered) {
	t.Helper()
	envs := map[string]bool{}
	for _, s := range config.Settings() {
		envs[s.Env] = true
	}
	var sawConfig bool
	for _, o := range r.objects {
		switch o := o.(type) {
		case *corev1.ConfigMap:
			if data, ok := o.Data["config.yaml"]; ok {
				sawConfig = true
				_, err := config.Parse([]byte(data))
				require.NoError(t, err, "ConfigMap %s: the sidecar would refuse config.yaml:\n%s", o.Name, data)
			}
			if data, ok := o.Data["pulsar-sidecar.json"]; ok {
				var d map[string]any
				require.NoError(t, json.Unmarshal([]byte(data), &d), "dashboard ConfigMap %s", o.Name)
				require.NotEmpty(t, d["panels"])
			}
		case *corev1.Secret:
			for k := range o.StringData {
				require.True(t, envs[k], "Secret %s: %s is not a PSC_* setting of internal/config", o.Name, k)
			}
		}
	}
	require.True(t, sawConfig, "no ConfigMap with config.yaml")
}

func TestTemplateShapes(t *testing.T) {
	helm := tool(t, "helm")
	tests := []struct {
		values    string
		kinds     []string
		workload  string // Deployment, StatefulSet or "" (sidecar)
		withRules bool
	}{
		{"ci/gateway-values.yaml", []string{"ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
			"PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceAccount", "ServiceMonitor"}, "Deployment", true},
		{"ci/statefulset-values.yaml", []string{"ConfigMap", "PodDisruptionBudget", "PrometheusRule", "Service",
			"ServiceAccount", "ServiceMonitor", "StatefulSet"}, "StatefulSet", true},
		{"ci/sidecar-values.yaml", []string{"ConfigMap", "PrometheusRule", "Secret"}, "", true},
		{"", []string{"ConfigMap"}, "", false}, // the defaults: the sidecar shape
	}
	for _, tt := range tests {
		name := strings.TrimSuffix(filepath.Base(tt.values), "-values.yaml")
		if tt.values == "" {
			name = "defaults"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{chartDir}
			if tt.values != "" {
				args = append(args, "-f", filepath.Join(chartDir, tt.values))
			}
			r := render(t, helm, args...)
			require.Equal(t, tt.kinds, r.kinds())
			checkConfig(t, r)
			for _, o := range r.objects {
				switch o := o.(type) {
				case *appsv1.Deployment:
					require.Equal(t, "Deployment", tt.workload)
					checkPod(t, o.Name, o.Spec.Template.Spec, "http")
				case *appsv1.StatefulSet:
					require.Equal(t, "StatefulSet", tt.workload)
					checkPod(t, o.Name, o.Spec.Template.Spec, "http")
					require.Len(t, o.Spec.VolumeClaimTemplates, 1, "a volume per pod")
					require.Equal(t, "pulsar-sidecar-data", o.Spec.VolumeClaimTemplates[0].Name)
				}
			}
			require.Equal(t, tt.withRules, len(r.rules) == 1)
			if tt.withRules {
				checkRules(t, r.rules[0])
			}
		})
	}
	// The sidecar shape as an application uses it: a chart of its own with
	// this one as a dependency and the named templates in its pod.
	t.Run("billing-app", func(t *testing.T) {
		dir := t.TempDir()
		require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(chartDir, "examples", "billing-app"))))
		out, err := run(t, helm, "package", chartDir, "-d", filepath.Join(dir, "charts"))
		require.NoError(t, err, out)
		r := render(t, helm, dir)
		require.Equal(t, []string{"ConfigMap", "Deployment", "Secret"}, r.kinds())
		checkConfig(t, r)
		var saw bool
		for _, o := range r.objects {
			if d, ok := o.(*appsv1.Deployment); ok {
				saw = true
				require.Len(t, d.Spec.Template.Spec.Containers, 2, "the application and the sidecar")
				checkPod(t, d.Name, d.Spec.Template.Spec, "exec")
			}
		}
		require.True(t, saw)
	})
}

// TestTemplateRefusals: values that could not work fail at install with
// the reason, not as a crash-looping pod.
func TestTemplateRefusals(t *testing.T) {
	helm := tool(t, "helm")
	for _, tt := range []struct {
		name string
		set  []string
		want string
	}{
		{"gateway without apps", []string{"mode=gateway"}, "mode gateway needs config.apps"},
		{"replicas without a shared ackId secret", []string{"mode=gateway", "config.apps[0].name=a",
			"config.apps[0].tokenSHA256=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}, "needs PSC_CONSUME_SECRET"},
		{"unknown mode", []string{"mode=daemon"}, `mode "daemon"`},
		{"secret key that is not a setting", []string{"secretEnv.TOKEN=x"}, "want a PSC_* variable name"},
		{"pod monitor without a selector", []string{"serviceMonitor.enabled=true"}, "set serviceMonitor.podSelector"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"template", "psc", chartDir}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := run(t, helm, args...)
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "helm template %v should fail:\n%s", tt.set, out)
			require.Contains(t, out, tt.want)
		})
	}
}

// checkRules: the rendered PrometheusRule holds exactly the docs file's
// groups, and promtool accepts them.
func checkRules(t *testing.T, pr prometheusRule) {
	t.Helper()
	var doc struct {
		Groups []ruleGroup `json:"groups"`
	}
	data, err := os.ReadFile(rulesDoc)
	require.NoError(t, err)
	require.NoError(t, yaml.UnmarshalStrict(data, &doc))
	require.Equal(t, doc.Groups, pr.Spec.Groups, "the PrometheusRule is not the docs file")

	promtool := tool(t, "promtool")
	out, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "rendered.rules.yml")
	require.NoError(t, os.WriteFile(f, out, 0o600))
	res, err := run(t, promtool, "check", "rules", f)
	require.NoError(t, err, "promtool check rules on the rendered PrometheusRule:\n%s", res)
	t.Logf("promtool: %s", strings.TrimSpace(res))
}
