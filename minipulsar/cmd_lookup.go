package minipulsar

import (
	"regexp"

	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

func (c *conn) handlePartitionedMetadata(m *pb.CommandPartitionedTopicMetadata) {
	resp := &pb.CommandPartitionedTopicMetadataResponse{RequestId: proto.Uint64(m.GetRequestId())}
	name, err := parseTopic(m.GetTopic())
	switch {
	case err != nil:
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Failed.Enum()
		resp.Error = pb.ServerError_InvalidTopicName.Enum()
		resp.Message = proto.String(err.Error())
	case c.s.faults.lookupsRefused():
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Failed.Enum()
		resp.Error = pb.ServerError_ServiceNotReady.Enum()
		resp.Message = proto.String(errLookupRefused)
	case c.s.checkNamespace(name) != nil:
		// As Pulsar (ServerCnx.handlePartitionMetadataRequest): a missing
		// tenant or namespace is TopicNotFound, and the client gives up.
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Failed.Enum()
		resp.Error = pb.ServerError_TopicNotFound.Enum()
		resp.Message = proto.String(c.s.checkNamespace(name).Error())
	default:
		resp.Response = pb.CommandPartitionedTopicMetadataResponse_Success.Enum()
		resp.Partitions = proto.Uint32(uint32(c.s.partitionsOf(name)))
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_PARTITIONED_METADATA_RESPONSE.Enum(), PartitionMetadataResponse: resp}, nil)
}

func (c *conn) handleLookup(m *pb.CommandLookupTopic) {
	resp := &pb.CommandLookupTopicResponse{RequestId: proto.Uint64(m.GetRequestId())}
	name, err := parseTopic(m.GetTopic())
	switch {
	case err != nil:
		resp.Response = pb.CommandLookupTopicResponse_Failed.Enum()
		resp.Error = pb.ServerError_InvalidTopicName.Enum()
		resp.Message = proto.String(err.Error())
	case c.s.faults.lookupsRefused():
		resp.Response = pb.CommandLookupTopicResponse_Failed.Enum()
		resp.Error = pb.ServerError_ServiceNotReady.Enum()
		resp.Message = proto.String(errLookupRefused)
	case c.s.checkNamespace(name) != nil:
		resp.Response = pb.CommandLookupTopicResponse_Failed.Enum()
		resp.Error = pb.ServerError_TopicNotFound.Enum()
		resp.Message = proto.String(c.s.checkNamespace(name).Error())
	default:
		resp.Response = pb.CommandLookupTopicResponse_Connect.Enum()
		resp.BrokerServiceUrl = proto.String(c.s.ServiceURL())
		// A TLS client takes this one; both name the one listener.
		resp.BrokerServiceUrlTls = proto.String(c.s.ServiceURL())
		resp.Authoritative = proto.Bool(true)
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_LOOKUP_RESPONSE.Enum(), LookupTopicResponse: resp}, nil)
}

func (c *conn) handleGetTopicsOfNamespace(m *pb.CommandGetTopicsOfNamespace) {
	topics := c.s.topicsOfNamespace(m.GetNamespace(), m.GetMode() != pb.CommandGetTopicsOfNamespace_NON_PERSISTENT)
	filtered := false
	if p := m.GetTopicsPattern(); p != "" {
		if re, err := regexp.Compile(p); err == nil {
			kept := topics[:0]
			for _, t := range topics {
				if re.MatchString(t) {
					kept = append(kept, t)
				}
			}
			topics, filtered = kept, true
		}
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_TOPICS_OF_NAMESPACE_RESPONSE.Enum(), GetTopicsOfNamespaceResponse: &pb.CommandGetTopicsOfNamespaceResponse{
		RequestId: proto.Uint64(m.GetRequestId()),
		Topics:    topics,
		Filtered:  proto.Bool(filtered),
		Changed:   proto.Bool(true),
	}}, nil)
}
