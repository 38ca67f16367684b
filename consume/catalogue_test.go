package consume

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestCatalogueHasTheTable: every answer of the error table and of
// AsError's own cases is a catalogue row (and so in docs/errors.md).
func TestCatalogueHasTheTable(t *testing.T) {
	for _, r := range errorTable {
		assert.True(t, Catalogue.Has(r.Status, r.Code), "%d %s is not in Catalogue", r.Status, r.Code)
	}
	for _, err := range []error{ErrClosed, errors.New("boom"), storeError(errors.New("x")), notFound(SubscriptionRef{})} {
		e := AsError(err)
		assert.True(t, Catalogue.Has(e.Status, e.Code), "%d %s is not in Catalogue", e.Status, e.Code)
	}
}
