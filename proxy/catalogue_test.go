package proxy

import (
	"context"
	"errors"
	"testing"

	"github.com/pulsar-sidecar/pulsar-sidecar/produce"

	"github.com/stretchr/testify/assert"
)

// TestCatalogueHasTheTables: every answer of the error table is a
// catalogue row (and so in docs/errors.md).
func TestCatalogueHasTheTables(t *testing.T) {
	for _, r := range errorTable {
		assert.True(t, Catalogue.Has(r.Status, r.Code), "%d %s is not in Catalogue", r.Status, r.Code)
	}
	for _, err := range []error{errors.New("boom"), context.DeadlineExceeded, context.Canceled, produce.ErrPoolClosed} {
		e := toError(err)
		assert.True(t, Catalogue.Has(e.Status, e.Code), "%d %s is not in Catalogue", e.Status, e.Code)
		e = sendError(err)
		assert.True(t, Catalogue.Has(e.Status, e.Code), "%d %s is not in Catalogue", e.Status, e.Code)
	}
}
