package dispatch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/jax-mba/mba/workflows"
)

// NotReady is a Temporal server that answers but cannot run this service's workflows: the
// namespace is missing, or a search attribute the workflows set is not registered (every
// workflow that sets it would fail its task). It names the problem for /readyz and the logs.
type NotReady struct{ Problem string }

func (e *NotReady) Error() string { return e.Problem }

// Ready reports whether c can do the service's work in namespace: the server answers, the
// namespace exists and every search attribute of workflows.SearchAttributes is registered
// with its type. A process on the wrong namespace answered 200 and led the dispatcher before
// (issue 19); now it is not ready and never leads.
func Ready(ctx context.Context, c client.Client, namespace string) error {
	// DescribeNamespace answering is the health check too: no separate CheckHealth call.
	_, err := c.WorkflowService().DescribeNamespace(ctx, &workflowservice.DescribeNamespaceRequest{Namespace: namespace})
	var notFound *serviceerror.NamespaceNotFound
	if errors.As(err, &notFound) {
		return &NotReady{Problem: fmt.Sprintf("namespace %q does not exist on the Temporal server", namespace)}
	}
	if err != nil {
		return fmt.Errorf("Ready: describe namespace %q: %w", namespace, err)
	}
	attrs, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("Ready: list search attributes of %q: %w", namespace, err)
	}
	var missing []string
	for _, want := range workflows.SearchAttributes() {
		name, typ, _ := strings.Cut(want, "=")
		if got, ok := attrs.GetCustomAttributes()[name]; !ok || got.String() != typ {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return &NotReady{Problem: fmt.Sprintf("namespace %q lacks the search attributes %s (deploy/temporal/README.md registers them)",
			namespace, strings.Join(missing, ", "))}
	}
	return nil
}
