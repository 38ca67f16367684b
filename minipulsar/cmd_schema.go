package minipulsar

import (
	"google.golang.org/protobuf/proto"

	pb "github.com/pulsar-sidecar/pulsar-sidecar/minipulsar/internal/wirepb"
)

// handleGetSchema answers a schema lookup by version (latest without one),
// as consumers decoding typed values send it.
func (c *conn) handleGetSchema(m *pb.CommandGetSchema) {
	resp := &pb.CommandGetSchemaResponse{RequestId: proto.Uint64(m.GetRequestId())}
	name, err := parseTopic(m.GetTopic())
	var s *storedSchema
	var v int
	if err == nil {
		var latest bool
		if v, latest, err = decodeSchemaVersion(m.GetSchemaVersion()); err == nil {
			s, v, err = c.s.schemas.get(name, v, latest)
		}
	}
	if err != nil {
		resp.ErrorCode = pb.ServerError_TopicNotFound.Enum()
		resp.ErrorMessage = proto.String(errSchemaNotFound + " " + m.GetTopic())
	} else {
		resp.Schema = s.toProto()
		resp.SchemaVersion = encodeSchemaVersion(v)
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_SCHEMA_RESPONSE.Enum(), GetSchemaResponse: resp}, nil)
}

// handleGetOrCreateSchema registers a schema a producer sends with a
// message of another schema than its own.
func (c *conn) handleGetOrCreateSchema(m *pb.CommandGetOrCreateSchema) {
	resp := &pb.CommandGetOrCreateSchemaResponse{RequestId: proto.Uint64(m.GetRequestId())}
	name, err := parseTopic(m.GetTopic())
	var v []byte
	if err == nil {
		v, err = c.s.schemas.add(name, fromProto(m.GetSchema(), c.s.clock.Now()))
	}
	if err != nil {
		resp.ErrorCode = pb.ServerError_IncompatibleSchema.Enum()
		resp.ErrorMessage = proto.String(err.Error())
	} else {
		resp.SchemaVersion = v
	}
	c.send(&pb.BaseCommand{Type: pb.BaseCommand_GET_OR_CREATE_SCHEMA_RESPONSE.Enum(), GetOrCreateSchemaResponse: resp}, nil)
}
