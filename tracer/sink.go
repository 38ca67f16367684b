package tracer

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sink stores batches of events. The pipeline calls Write from one goroutine
// at a time; implementations need not be safe for concurrent Write calls
// unless they say so (both stores in this package are).
//
// Write returns:
//   - nil when every event is stored (an event that was already stored counts
//     as stored: writes are idempotent on Event.ID);
//   - a *BatchError when some events were not stored, listing them by index
//     with whether a retry may succeed;
//   - any other error when the batch as a whole failed. Such an error is
//     treated as retriable unless errors.Is(err, ErrPermanent).
//
// Write must honour ctx's deadline. Events passed in have their ID set.
// Write must not keep events (or its backing array) after it returns: the
// outbox replayer decodes the next record into the same array.
type Sink interface {
	Write(ctx context.Context, events []Event) error
}

// ErrPermanent marks a failure that a retry will not fix (a malformed
// document, a mapping conflict). Wrap it with %w.
var ErrPermanent = errors.New("tracer: permanent failure")

// ItemError tells why one event of a batch was not stored.
type ItemError struct {
	Index     int    // position of the event in the batch given to Write
	Status    int    // the store's status for the item, e.g. an HTTP status; 0 when none
	Reason    string // the store's explanation
	Retriable bool   // whether writing the event again may succeed
}

// BatchError reports the events of a batch that were not stored. Events not
// listed were stored.
type BatchError struct {
	Items []ItemError
}

func (e *BatchError) Error() string {
	var retriable, permanent int
	for _, it := range e.Items {
		if it.Retriable {
			retriable++
		} else {
			permanent++
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tracer: %d events not stored (%d retriable, %d permanent)", len(e.Items), retriable, permanent)
	if len(e.Items) > 0 {
		fmt.Fprintf(&b, "; first: status %d: %s", e.Items[0].Status, e.Items[0].Reason)
	}
	return b.String()
}

// Retriable reports whether err, returned by Sink.Write for a whole batch,
// may succeed on a retry.
func Retriable(err error) bool {
	return err != nil && !errors.Is(err, ErrPermanent)
}
