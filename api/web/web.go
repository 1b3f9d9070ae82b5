// Package web is the researchers' web UI: plain HTML, CSS and JavaScript modules embedded in
// the binary. There is no build step (see the README's "Web UI" section): the files under
// static/ are exactly what the browser runs, and they only call the public REST API.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// asset is one embedded file with what its responses need.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// contentTypes are set explicitly: the machine's mime.types must not decide whether a browser
// runs our modules (a module served as text/plain is refused).
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
	".json": "application/json",
}

// Handler serves the UI: / and app routes (paths without an extension, e.g. a bookmarked
// /sessions/12) get index.html; /static/<file> gets the file; anything else is 404.
//
// Files are named without content hashes (no build step), so every response says no-cache and
// carries an ETag: browsers revalidate and get a 304 until the binary changes.
func Handler() http.Handler {
	assets := map[string]asset{}
	err := fs.WalkDir(files, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		assets["/"+p] = asset{body: body, contentType: ct, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: reading embedded assets: " + err.Error()) // only a broken build gets here
	}
	index := assets["/static/index.html"]
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean("/" + r.URL.Path)
		a, ok := assets[p]
		switch {
		case ok:
		case IsAppRoute(p):
			a = index
		default:
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// IsAppRoute reports whether p is a page of the single-page app rather than a file: the root,
// or a path outside /static whose last segment has no extension.
func IsAppRoute(p string) bool {
	if p == "/" {
		return true
	}
	if strings.HasPrefix(p, "/static/") || p == "/static" {
		return false
	}
	return path.Ext(p) == ""
}
