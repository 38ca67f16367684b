package proxy

import "github.com/pulsar-sidecar/pulsar-sidecar/produce"

// Result is the answer for one message. It is part of the API.
type Result struct {
	UID       string         `json:"uid"`
	MessageID string         `json:"messageId,omitempty"`
	Status    produce.Status `json:"status"`
	Cluster   string         `json:"cluster,omitempty"`
	// DeliverAt is when a scheduled message becomes visible (RFC 3339).
	DeliverAt string `json:"deliverAt,omitempty"`
	// Duplicate is true when the result comes from the idempotency store:
	// an earlier request with the same key produced the message.
	Duplicate bool `json:"duplicate,omitempty"`
	// DuplicateRisk is true when the idempotency store was unreachable and
	// the message was produced without the check (ADR 030).
	DuplicateRisk bool `json:"duplicateRisk,omitempty"`
	// Error says why a message is not durable (status failed).
	Error *ErrorBody `json:"error,omitempty"`
}
