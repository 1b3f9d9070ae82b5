package api

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestOpenAPIDescribesViews: each view's JSON fields are the properties of its schema in
// openapi.json, no more and no fewer, so a field added to a view is documented with it.
func TestOpenAPIDescribesViews(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPI, &doc))
	for schema, view := range map[string]any{
		"Alert": AlertView{}, "ChannelHealth": ChannelHealthView{}, "NotificationPrefs": NotificationPrefsView{},
		"User": UserView{}, "Device": DeviceView{}, "Session": SessionView{}, "SessionEvent": SessionEventView{},
		"SessionFile": FileView{}, "AuditEntry": AuditView{}, "Schedule": ScheduleView{},
	} {
		t.Run(schema, func(t *testing.T) {
			s, ok := doc.Components.Schemas[schema]
			require.True(t, ok, "openapi.json lacks the schema %s", schema)
			var documented []string
			for name := range s.Properties {
				documented = append(documented, name)
			}
			slices.Sort(documented)
			require.Equal(t, jsonFields(reflect.TypeOf(view)), documented, "the properties of %s in openapi.json are %T's fields", schema, view)
		})
	}
}

// jsonFields lists the JSON names a struct marshals, embedded structs' included, sorted.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-" || !f.IsExported():
		case f.Anonymous && name == "":
			out = append(out, jsonFields(f.Type)...)
		case name == "":
			out = append(out, f.Name)
		default:
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
