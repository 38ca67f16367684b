package charts

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/pulsar-sidecar/pulsar-sidecar/internal/config"
)

// TestManagementPortAndSecretFiles: with managementPort the configuration
// gets management.listen, the probes, the ServiceMonitor and the
// NetworkPolicy's scrapers move to that port; secretVolumes are mounted
// read-only where the configuration's ...File settings point.
func TestManagementPortAndSecretFiles(t *testing.T) {
	helm := tool(t, "helm")
	for _, mode := range []string{"gateway", "sidecar"} {
		t.Run(mode, func(t *testing.T) {
			args := []string{chartDir}
			if mode == "gateway" {
				args = append(args, "-f", filepath.Join(chartDir, "ci", "gateway-values.yaml"))
			} else {
				args = append(args, "-f", filepath.Join(chartDir, "ci", "sidecar-values.yaml"), "--set", "managementPort=9090",
					"--set", "secretVolumes[0].secretName=pulsar-sidecar-pulsar",
					"--set", "secretVolumes[0].mountPath=/var/run/secrets/pulsar-sidecar/pulsar")
			}
			r := render(t, helm, args...)
			port, probePort := "mgmt", "mgmt"
			if mode == "sidecar" {
				port = "psc-mgmt"
			}
			var sawConfig, sawPod bool
			for _, o := range r.objects {
				switch o := o.(type) {
				case *corev1.ConfigMap:
					data, ok := o.Data["config.yaml"]
					if !ok {
						continue
					}
					sawConfig = true
					var c config.Config
					require.NoError(t, yaml.Unmarshal([]byte(data), &c))
					assert.Equal(t, "0.0.0.0:9090", c.Management.Listen)
				case *appsv1.Deployment:
					sawPod = true
					var c *corev1.Container
					for i := range o.Spec.Template.Spec.Containers {
						if o.Spec.Template.Spec.Containers[i].Name == "pulsar-sidecar" {
							c = &o.Spec.Template.Spec.Containers[i]
						}
					}
					require.NotNil(t, c)
					var names []string
					for _, p := range c.Ports {
						names = append(names, p.Name)
					}
					assert.Contains(t, names, port)
					for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
						require.NotNil(t, p.HTTPGet)
						assert.Equal(t, probePort, p.HTTPGet.Port.String(), "probes go to the management port")
					}
					var mounted bool
					for _, m := range c.VolumeMounts {
						if m.MountPath == "/var/run/secrets/pulsar-sidecar/pulsar" {
							mounted = m.ReadOnly
						}
					}
					assert.True(t, mounted, "the secret volume is mounted read-only")
				case *networkingv1.NetworkPolicy:
					require.Len(t, o.Spec.Ingress, 2, "data plane, and the management port for the scrapers")
					assert.Equal(t, "http", o.Spec.Ingress[0].Ports[0].Port.String())
					assert.Equal(t, "mgmt", o.Spec.Ingress[1].Ports[0].Port.String())
					assert.Len(t, o.Spec.Ingress[0].From, 1, "the scrapers no longer reach the data plane")
				}
			}
			assert.True(t, sawConfig)
			if mode == "gateway" {
				assert.True(t, sawPod)
				require.NotEmpty(t, r.monitor)
				assert.Equal(t, port, r.monitor[0].Spec.Endpoints[0].Port)
			}
		})
	}
}
