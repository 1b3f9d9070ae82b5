package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/jax-mba/mba/internal/dispatch"
	"github.com/jax-mba/mba/internal/recording"
	"github.com/jax-mba/mba/internal/storage"
	"github.com/jax-mba/mba/internal/store"
	"github.com/jax-mba/mba/workflows"
)

// Error is an error with the status and message a client may see. Everything else becomes a
// 500 whose text never leaves the server. It is also the wire form of every error body,
// {"message"} or {"message","errors"}: the status and Retry-After travel as HTTP, not JSON.
type Error struct {
	Status  int               `json:"-"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"errors,omitempty"` // for 400 validation errors: field path -> reason
	// RetryAfter, when set, is sent as the Retry-After header (429, 503).
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Message }

// errorf builds an *Error.
func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// invalid reports request fields that fail validation (400). The message names every reason
// too, since front ends (the lab's original one) show only message.
// The message is built as the rules of a new session build theirs.
func invalid(fields map[string]string) *Error {
	r := recording.Refuse(fields)
	return &Error{Status: http.StatusBadRequest, Message: r.Message, Fields: r.Fields}
}

// statusOf is the one place that maps errors to HTTP statuses and client-visible messages.
func statusOf(err error) *Error {
	var apiErr *Error
	var refusal *recording.Refusal
	var maxBytes *http.MaxBytesError
	var refused *dispatch.RefusedError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &refusal) && refusal.Conflict:
		return &Error{Status: http.StatusConflict, Message: refusal.Message, Fields: refusal.Fields}
	case errors.As(err, &refusal):
		return &Error{Status: http.StatusBadRequest, Message: refusal.Message, Fields: refusal.Fields}
	case errors.As(err, &refused):
		return refusedStatus(refused)
	case errors.Is(err, dispatch.ErrSessionClosed):
		return &Error{Status: http.StatusConflict, Message: err.Error(), Fields: map[string]string{"session": "has ended"}}
	case errors.As(err, &maxBytes):
		return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBytes.Limit)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "already exists")
	case errors.Is(err, store.ErrDeviceBusy):
		return errorf(http.StatusConflict, "%s", store.ErrDeviceBusy.Error())
	case errors.Is(err, recording.ErrIdempotencyMismatch):
		return errorf(http.StatusUnprocessableEntity, "%s", recording.ErrIdempotencyMismatch.Error())
	case errors.Is(err, store.ErrLastAdmin):
		return errorf(http.StatusConflict, "%s", store.ErrLastAdmin.Error())
	case storage.IsFull(err):
		return &Error{Status: http.StatusInsufficientStorage, Message: "the server's file storage is full; try again once space is freed",
			RetryAfter: time.Minute}
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Message: "the request took too long; try again", RetryAfter: time.Second}
	case errors.Is(err, context.Canceled):
		return errorf(499, "client closed the request") // nginx's code; nobody is listening
	}
	return errorf(http.StatusInternalServerError, "internal server error")
}

// refusedStatus is a workflow Update's refusal by its kind: a bad value 400, an enclosure not
// in the session 404, what the state does not allow (or an unnamed kind) 409.
func refusedStatus(r *dispatch.RefusedError) *Error {
	status := http.StatusConflict
	switch r.Kind {
	case workflows.RefusedInvalid:
		status = http.StatusBadRequest
	case workflows.RefusedUnknown:
		status = http.StatusNotFound
	}
	return &Error{Status: status, Message: r.Reason, Fields: map[string]string{cmp.Or(r.Field, "session"): r.Reason}}
}

// writeError sends err to the client and logs what the client must not see.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := statusOf(err)
	if e.Status >= 500 && e.Status != http.StatusServiceUnavailable {
		log.ErrorContext(r.Context(), "request failed", "error", err.Error(),
			"request_id", middleware.GetReqID(r.Context()), "route", routePattern(r))
	}
	msg := e.Message
	if e.RetryAfter > 0 {
		secs := int((e.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if e.Status == http.StatusTooManyRequests {
			msg += fmt.Sprintf(" (retry in %d s)", secs) // the header alone is invisible to people
		}
	}
	if e.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mba"`)
	}
	writeJSON(w, e.Status, &Error{Message: msg, Fields: e.Fields})
}

// writeJSON sends v as JSON with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handlerFunc is an HTTP handler that returns its error instead of writing it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc, sending any error through writeError.
func (s *Server) handle(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, r, s.log, err)
		}
	}
}

// decodeJSON reads the request body into v with clear 4xx errors for every way it can be wrong:
// not JSON, not one value, a field v does not have (named, so a typo like fragment_hourlly is
// not silently ignored), invalid UTF-8 (encoding/json would replace it) or a NUL character in
// a string (Postgres cannot store it).
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errorf(http.StatusUnsupportedMediaType, "request body must be JSON (Content-Type: application/json)")
		}
	}
	raw, err := io.ReadAll(r.Body) // bounded by the limits middleware
	if err != nil {
		var maxBytes *http.MaxBytesError
		if errors.As(err, &maxBytes) {
			return err
		}
		return errorf(http.StatusBadRequest, "unreadable request body")
	}
	if !utf8.Valid(raw) {
		return errorf(http.StatusBadRequest, "request body must be valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		if dec.More() {
			return errorf(http.StatusBadRequest, "request body must hold exactly one JSON value")
		}
		if field, ok := nulField(reflect.ValueOf(v), ""); ok {
			return &Error{Status: http.StatusBadRequest, Message: field + " must not contain a NUL character",
				Fields: map[string]string{field: "must not contain a NUL character"}}
		}
		return nil
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "request body is required")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "malformed JSON in request body")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return errorf(http.StatusBadRequest, "request body must be a JSON %s", kindName(typeErr.Type.Kind().String()))
		}
		return invalid(map[string]string{field: "must be a " + kindName(typeErr.Type.Kind().String())})
	}
	// encoding/json has no error type for an unknown field, only this text.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("unknown field %q in request body", name),
			Fields: map[string]string{name: "is not a field of this request"}}
	}
	return errorf(http.StatusBadRequest, "unreadable request body")
}

// nulField finds a string holding NUL in a decoded value and returns its JSON path.
func nulField(v reflect.Value, path string) (string, bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return nulField(v.Elem(), path)
		}
	case reflect.String:
		if strings.ContainsRune(v.String(), 0) {
			return cmp.Or(path, "body"), true
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			if f, ok := nulField(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); ok {
				return f, true
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if f, ok := nulField(v.MapIndex(k), joinPath(path, fmt.Sprint(k))); ok {
				return f, true
			}
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			if name == "" {
				name = sf.Name
			}
			if f, ok := nulField(v.Field(i), joinPath(path, name)); ok {
				return f, true
			}
		}
	}
	return "", false
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func kindName(kind string) string {
	switch kind {
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "list"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64":
		return "number"
	case "bool":
		return "boolean"
	}
	return kind
}
