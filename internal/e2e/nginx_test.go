package e2e

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNginxKeepsTheLabsFrontEnd runs deploy/README.md's recipe for a lab that keeps its own
// front end on the same origin: deploy/nginx/mba.conf with the README's location block, under
// Debian's nginx (nginx -t, then requests through it): the front end's files and its routes
// from nginx, the API behind it on the same origin, heartbeats on plain HTTP.
func TestNginxKeepsTheLabsFrontEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("needs PostgreSQL, Temporal and nginx")
	}
	nginx := cmp.Or(os.Getenv("MBA_NGINX"), "/usr/sbin/nginx") // scripts/test.sh installs Debian's
	if _, err := os.Stat(nginx); err != nil {
		t.Fatalf("no nginx at %s: install Debian's nginx-light (scripts/test.sh does) or set MBA_NGINX", nginx)
	}
	s := newStack(t)
	dir := t.TempDir()
	// nginx's worker runs as an unprivileged user when started as root: it must reach the files.
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	for _, d := range []string{"www", "tmp"} {
		require.NoError(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("<title>the lab's front end</title>"), 0o644))
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mba.example.org", "-days", "1",
		"-keyout", filepath.Join(dir, "tls.key"), "-out", filepath.Join(dir, "tls.crt")).CombinedOutput()
	require.NoError(t, err, "%s", out)

	site, err := os.ReadFile("../../deploy/nginx/mba.conf")
	require.NoError(t, err)
	readme, err := os.ReadFile("../../deploy/README.md")
	require.NoError(t, err)
	snippet := regexp.MustCompile("(?s)<!-- own-frontend[^>]*-->\n```nginx\n(.*?)```\n<!-- /own-frontend -->").FindSubmatch(readme)
	require.NotNil(t, snippet, "deploy/README.md has no own-frontend block")
	const embedded = "    location / {\n        proxy_pass http://mba_api;\n    }\n"
	require.Equal(t, 1, strings.Count(string(site), embedded), "the block the README says to replace")
	httpPort, httpsPort := freePort(t), freePort(t)
	api, err := url.Parse(s.api.URL)
	require.NoError(t, err)
	conf := strings.NewReplacer(
		embedded, strings.ReplaceAll(string(snippet[1]), "/var/www/mba-frontend", filepath.Join(dir, "www")),
		"/etc/ssl/certs/mba.example.org.crt", filepath.Join(dir, "tls.crt"),
		"/etc/ssl/private/mba.example.org.key", filepath.Join(dir, "tls.key"),
		"server 127.0.0.1:8080 ", "server "+api.Host+" ",
		"listen 80;", "listen 127.0.0.1:"+httpPort+";", "listen [::]:80;", "",
		"listen 443 ssl http2;", "listen 127.0.0.1:"+httpsPort+" ssl http2;", "listen [::]:443 ssl http2;", "",
	).Replace(string(site))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "mba.conf"), []byte(conf), 0o644))
	main := fmt.Sprintf(`daemon off; master_process off; pid %[1]s/nginx.pid; error_log %[1]s/error.log;
events {}
http {
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path %[1]s/tmp/body; proxy_temp_path %[1]s/tmp/proxy; fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi; scgi_temp_path %[1]s/tmp/scgi;
    include %[1]s/mba.conf;
}
`, dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644))

	out, err = exec.Command(nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	require.NoError(t, err, "nginx -t: %s", out)
	cmd := exec.Command(nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"))
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the test's own self-signed certificate
		// mba.example.org is this nginx: the Host header the real site gets.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+httpsPort)
		}}}
	get := func(path string) (int, string) {
		res, err := client.Get("https://mba.example.org" + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := get("/")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx never answered: %s\n%s", body, log)
		}
	}
	for _, path := range []string{"/", "/sessions/12", "/reset/3/some-token"} {
		code, body := get(path)
		require.Equal(t, http.StatusOK, code, path)
		require.Contains(t, body, "the lab's front end", "%s is the front end's, from nginx", path)
	}
	res, err := client.Post("https://mba.example.org/api/auth/login", "application/json",
		strings.NewReader(`{"email_address":"ann@lab.example","password":"correct horse"}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", body)
	require.Contains(t, string(body), `"access"`, "the API on the same origin")
	code, _ := get("/healthz")
	require.Equal(t, http.StatusOK, code)

	// An unmodified enclosure reaches the heartbeat over plain HTTP through the same nginx.
	s.enclosuresVia("http://127.0.0.1:"+httpPort+"/api", 1, "NGX") // waits until it registered
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
