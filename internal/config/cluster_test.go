package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nocbridge/nocbridge/internal/testutil/tlscert"
)

func TestLoadCluster(t *testing.T) {
	dir := t.TempDir()
	tlscert.Write(t, dir)
	tests := []struct {
		name    string
		body    string
		cluster *Cluster
		natsURL string
		errs    []string // substrings of the errors, in order; none: valid
	}{
		{name: "single node", body: "state_dir: data\n"},
		{
			name: "three nodes with route TLS",
			body: "cluster:\n  name: noc-east\n  node: nb1\n  listen: 0.0.0.0:6222\n" +
				"  peers: [nats://nb2.example.net:6222, nats://192.0.2.3:6222]\n" +
				"  tls: {cert_file: cert.pem, key_file: key.pem, ca_file: cert.pem}\n  down_when: majority\n",
			cluster: &Cluster{Name: "noc-east", Node: "nb1", Listen: "0.0.0.0:6222",
				Peers: []string{"nats://nb2.example.net:6222", "nats://192.0.2.3:6222"},
				TLS: &ClusterTLS{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem"),
					CAFile: filepath.Join(dir, "cert.pem")},
				DownWhen: DownWhenMajority},
		},
		{
			name:    "down_when defaults to all",
			body:    "cluster: {name: c, node: nb2, listen: \"127.0.0.1:6222\", peers: [\"nats://127.0.0.1:6223\"]}\n",
			cluster: &Cluster{Name: "c", Node: "nb2", Listen: "127.0.0.1:6222", Peers: []string{"nats://127.0.0.1:6223"}, DownWhen: DownWhenAll},
		},
		{
			name:    "existing NATS cluster",
			body:    "store: {nats_url: \"nats://n1.example.net:4222, tls://n2.example.net:4222\"}\ncluster: {name: c, node: nb1}\n",
			cluster: &Cluster{Name: "c", Node: "nb1", DownWhen: DownWhenAll},
			natsURL: "nats://n1.example.net:4222, tls://n2.example.net:4222",
		},
		{name: "nats_url alone", body: "store: {nats_url: \"nats://127.0.0.1:4222\"}\n", natsURL: "nats://127.0.0.1:4222"},
		{
			name: "missing keys",
			body: "cluster: {down_when: all}\n",
			errs: []string{":1: cluster: name is required", ":1: cluster: node is required", ":1: cluster: listen is required", ":1: cluster: peers is required"},
		},
		{
			name: "own address as peer, port 0",
			body: "cluster: {name: c, node: nb1, listen: \"127.0.0.1:0\", peers: [\"nats://127.0.0.1:0\"]}\n",
			errs: []string{`listen "127.0.0.1:0" needs a fixed port`, `peers[0] "nats://127.0.0.1:0": port must be a number 1..65535`},
		},
		{
			name: "own listen address as peer",
			body: "cluster: {name: c, node: nb1, listen: \"127.0.0.1:6222\", peers: [\"nats://127.0.0.1:6222\"]}\n",
			errs: []string{"peers[0] 127.0.0.1:6222 is this node's own listen address"},
		},
		{
			name: "tls incomplete",
			body: "cluster: {name: c, node: nb1, listen: \"127.0.0.1:6222\", peers: [\"nats://127.0.0.1:6223\"], tls: {cert_file: cert.pem, key_file: key.pem}}\n",
			errs: []string{"cluster: tls needs cert_file, key_file and ca_file"},
		},
		{
			name: "unknown key",
			body: "cluster: {name: c, node: nb1, listen: \"127.0.0.1:6222\", peers: [\"nats://127.0.0.1:6223\"], routes: []}\n",
			errs: []string{"routes"},
		},
		{
			name: "password in nats_url never printed",
			body: "store: {nats_url: \"http://u:s3cr3t-pw@n1.example.net:4222\"}\n",
			errs: []string{"store: nats_url http://u:xxxxx@n1.example.net:4222 must be"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "c"+strings.Repeat("x", i)+".yaml")
			if err := os.WriteFile(path, []byte(tt.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := Load(path)
			if len(tt.errs) > 0 {
				if err == nil {
					t.Fatalf("Load succeeded, want errors %q", tt.errs)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error shows the password: %v", err)
				}
				es := strings.Split(err.Error(), "\n")
				if len(es) != len(tt.errs) {
					t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tt.errs), err)
				}
				for j, want := range tt.errs {
					if !strings.HasPrefix(es[j], path+":") || !strings.Contains(es[j], want) {
						t.Errorf("error %d = %q, want %s:LINE …%s…", j, es[j], path, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Cluster, tt.cluster) {
				t.Errorf("cluster = %+v, want %+v", cfg.Cluster, tt.cluster)
			}
			if cfg.Store.NATSURL != tt.natsURL {
				t.Errorf("store.nats_url = %q, want %q", cfg.Store.NATSURL, tt.natsURL)
			}
		})
	}
}
