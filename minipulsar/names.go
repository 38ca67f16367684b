package minipulsar

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalidTopic is returned for a topic name that cannot be normalised.
var ErrInvalidTopic = errors.New("minipulsar: invalid topic name")

const partitionSuffix = "-partition-"

// topicName is a parsed, fully qualified topic name.
type topicName struct {
	domain    string // persistent or non-persistent
	tenant    string
	namespace string
	local     string // the topic's own name, with any partition suffix
}

func (n topicName) String() string {
	return n.domain + "://" + n.tenant + "/" + n.namespace + "/" + n.local
}

// ns is "tenant/namespace".
func (n topicName) ns() string { return n.tenant + "/" + n.namespace }

// base returns the partitioned topic's name for a partition, and the
// partition index (-1 when n is not a partition).
func (n topicName) base() (topicName, int) {
	i := strings.LastIndex(n.local, partitionSuffix)
	if i <= 0 {
		return n, -1
	}
	idx, err := strconv.Atoi(n.local[i+len(partitionSuffix):])
	if err != nil || idx < 0 {
		return n, -1
	}
	b := n
	b.local = n.local[:i]
	return b, idx
}

func (n topicName) partition(i int) topicName {
	p := n
	p.local = n.local + partitionSuffix + strconv.Itoa(i)
	return p
}

// parseTopic normalises a topic name the way Pulsar clients do: "x" is
// persistent://public/default/x, "t/n/x" is persistent://t/n/x.
func parseTopic(s string) (topicName, error) {
	domain := "persistent"
	rest := s
	if i := strings.Index(s, "://"); i >= 0 {
		domain, rest = s[:i], s[i+3:]
		if domain != "persistent" && domain != "non-persistent" {
			return topicName{}, fmt.Errorf("%w: %q: domain must be persistent or non-persistent", ErrInvalidTopic, s)
		}
	} else if !strings.Contains(s, "/") {
		rest = "public/default/" + s
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return topicName{}, fmt.Errorf("%w: %q: want tenant/namespace/topic", ErrInvalidTopic, s)
	}
	for _, p := range parts {
		if p == "" {
			return topicName{}, fmt.Errorf("%w: %q: empty element", ErrInvalidTopic, s)
		}
	}
	if strings.Contains(parts[2], "/") {
		return topicName{}, fmt.Errorf("%w: %q: too many elements (v1 names with a cluster are not supported)", ErrInvalidTopic, s)
	}
	return topicName{domain: domain, tenant: parts[0], namespace: parts[1], local: parts[2]}, nil
}
