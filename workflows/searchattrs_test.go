package workflows_test

import (
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/workflows"
)

// TestSearchAttributesAreDefinedOnce: the dev set-up and the deployment notes register the
// search attributes the workflows set; a name or type that drifts from contract.go would make
// every workflow start or upsert fail on that namespace.
func TestSearchAttributesAreDefinedOnce(t *testing.T) {
	want := workflows.SearchAttributes()
	require.Equal(t, []string{"MbaSessionId=Int", "MbaDeviceNames=KeywordList", "MbaStatus=Keyword"}, want)

	devenv, err := os.ReadFile("../scripts/devenv.sh")
	require.NoError(t, err)
	list := regexp.MustCompile(`(?m)^MBA_SEARCH_ATTRIBUTES=\(([^)]*)\)`).FindSubmatch(devenv)
	require.NotNil(t, list, "scripts/devenv.sh sets MBA_SEARCH_ATTRIBUTES=(...)")
	require.Equal(t, want, regexp.MustCompile(`\S+`).FindAllString(string(list[1]), -1), "scripts/devenv.sh")

	readme, err := os.ReadFile("../deploy/temporal/README.md")
	require.NoError(t, err)
	var flags, creates []string
	for _, m := range regexp.MustCompile(`--search-attribute (\w+=\w+)`).FindAllStringSubmatch(string(readme), -1) {
		flags = append(flags, m[1])
	}
	for _, m := range regexp.MustCompile(`--name (\w+)\s+--type (\w+)`).FindAllStringSubmatch(string(readme), -1) {
		creates = append(creates, m[1]+"="+m[2])
	}
	require.Equal(t, want, flags, "deploy/temporal/README.md: start-dev --search-attribute flags")
	require.Equal(t, want, creates, "deploy/temporal/README.md: search-attribute create commands")
}
