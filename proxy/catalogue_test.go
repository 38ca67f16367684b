package proxy

import (
	"context"
	"errors"
	"testing"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"

	"github.com/stretchr/testify/assert"
)

// TestCatalogueHasTheFallbacks: the answers toError and sendError give
// outside the error table (internal/errdocs checks the table) are
// catalogue rows too.
func TestCatalogueHasTheFallbacks(t *testing.T) {
	for _, err := range []error{errors.New("boom"), context.DeadlineExceeded, context.Canceled, produce.ErrPoolClosed} {
		e := toError(err)
		assert.True(t, Catalogue.Has(e.Status, e.Code), "%d %s is not in Catalogue", e.Status, e.Code)
		e = sendError(err)
		assert.True(t, Catalogue.Has(e.Status, e.Code), "%d %s is not in Catalogue", e.Status, e.Code)
	}
}
