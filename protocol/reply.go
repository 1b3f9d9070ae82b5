package protocol

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jax-mba/mba/internal/recording"
)

// Command is a reply's command_name. The zero value "" means no command: reply 204 with an empty
// body, which EncodeReply does not produce.
type Command string

const (
	Start    Command = "START"
	Stop     Command = "STOP"
	Complete Command = "COMPLETE"
	Stream   Command = "STREAM"
)

func (c Command) known() bool {
	switch c {
	case Start, Stop, Complete, Stream:
		return true
	}
	return false
}

// StartParams are the parameters of START: the recording vocabulary's Start, under the
// name the wire code knows.
type StartParams = recording.Start

// Reply is a command for the enclosure. Start is set for START and only for START.
type Reply struct {
	Command Command
	Start   *StartParams
}

// EncodeReply returns the body of a 200 reply:
// {"command_name":"START","parameters":"{\"session_id\":12,...}"} (the parameters are a JSON
// string, not an object) or {"command_name":"STOP","parameters":null}. It refuses anything the
// client could crash on.
func EncodeReply(r Reply) ([]byte, error) {
	var params any // null
	switch {
	case r.Command == "":
		return nil, errors.New("protocol: no command to encode: reply 204 with an empty body")
	case !r.Command.known():
		return nil, fmt.Errorf("protocol: unknown command %q", r.Command)
	case r.Command != Start && r.Start != nil:
		return nil, fmt.Errorf("protocol: %s takes no parameters", r.Command)
	case r.Command == Start:
		if r.Start == nil {
			return nil, errors.New("protocol: START needs parameters")
		}
		if err := r.Start.Validate(); err != nil {
			return nil, fmt.Errorf("protocol: START parameters: %w", err)
		}
		p, err := json.Marshal(r.Start)
		if err != nil {
			return nil, err
		}
		params = string(p)
	}
	return json.Marshal(struct {
		Command    Command `json:"command_name"`
		Parameters any     `json:"parameters"`
	}{r.Command, params})
}

// ErrorBody returns the body of a 4xx/5xx reply, {"message":"...","errors":{"path":"reason"}};
// errors is left out when fields is empty. The client logs both and takes no command.
func ErrorBody(message string, fields map[string]string) []byte {
	b, err := json.Marshal(struct {
		Message string            `json:"message"`
		Errors  map[string]string `json:"errors,omitempty"`
	}{message, fields})
	if err != nil {
		panic(err) // cannot happen: strings always marshal
	}
	return b
}
