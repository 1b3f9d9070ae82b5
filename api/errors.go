package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/jax-mba/mba/internal/store"
)

// Error is an error with the status and message a client may see. Everything else becomes a
// 500 whose text never leaves the server.
type Error struct {
	Status  int
	Message string
	Fields  map[string]string // for 400 validation errors: field path -> reason
	// RetryAfter, when set, is sent as the Retry-After header (429, 503).
	RetryAfter time.Duration
}

func (e *Error) Error() string { return e.Message }

// errorf builds an *Error.
func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// invalid reports request fields that fail validation (400). The message names every reason
// too, since front ends (the lab's original one) show only message.
func invalid(fields map[string]string) *Error {
	reasons := make([]string, 0, len(fields))
	for _, f := range slices.Sorted(maps.Keys(fields)) {
		reasons = append(reasons, f+": "+fields[f])
	}
	return &Error{Status: http.StatusBadRequest, Message: strings.Join(reasons, "; "), Fields: fields}
}

// errorBody is the wire form of every error: {"message"} or {"message","errors"}.
type errorBody struct {
	Message string            `json:"message"`
	Errors  map[string]string `json:"errors,omitempty"`
}

// statusOf is the one place that maps errors to HTTP statuses and client-visible messages.
func statusOf(err error) *Error {
	var apiErr *Error
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &maxBytes):
		return errorf(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", maxBytes.Limit)
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "not found")
	case errors.Is(err, store.ErrConflict):
		return errorf(http.StatusConflict, "already exists")
	case errors.Is(err, store.ErrLastAdmin):
		return errorf(http.StatusConflict, "%s", store.ErrLastAdmin.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Status: http.StatusServiceUnavailable, Message: "the request took too long; try again", RetryAfter: time.Second}
	case errors.Is(err, context.Canceled):
		return errorf(499, "client closed the request") // nginx's code; nobody is listening
	}
	return errorf(http.StatusInternalServerError, "internal server error")
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
	writeJSON(w, e.Status, errorBody{Message: msg, Errors: e.Fields})
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

// decodeJSON reads the request body into v with clear 4xx errors for every way it can be wrong.
func decodeJSON(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return errorf(http.StatusUnsupportedMediaType, "request body must be JSON (Content-Type: application/json)")
		}
	}
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var maxBytes *http.MaxBytesError
	switch {
	case err == nil:
		if dec.More() {
			return errorf(http.StatusBadRequest, "request body must hold exactly one JSON value")
		}
		return nil
	case errors.As(err, &maxBytes):
		return err
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
	return errorf(http.StatusBadRequest, "unreadable request body")
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
