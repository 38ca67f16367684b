package minipulsar

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// The schema endpoints of Pulsar's admin API (SchemasResource), over the
// registry in schemas.go. Schemas are addressed without a domain.

func (a *admin) routeSchemas(mux *http.ServeMux) {
	const base = "/admin/v2/schemas/{tenant}/{ns}/{topic}"
	mux.HandleFunc("GET "+base+"/schema", a.handle(a.getSchema))
	mux.HandleFunc("GET "+base+"/schema/{version}", a.handle(a.getSchema))
	mux.HandleFunc("GET "+base+"/schemas", a.handle(a.getAllSchemas))
	mux.HandleFunc("POST "+base+"/schema", a.handle(a.postSchema))
	mux.HandleFunc("DELETE "+base+"/schema", a.handle(a.deleteSchema))
}

// schemaResponse is Pulsar's GetSchemaResponse.
type schemaResponse struct {
	Version    int64             `json:"version"`
	Type       string            `json:"type"`
	Timestamp  int64             `json:"timestamp"`
	Data       string            `json:"data"`
	Properties map[string]string `json:"properties"`
}

func toResponse(s *storedSchema, v int) schemaResponse {
	return schemaResponse{Version: int64(v), Type: schemaTypeNames[s.typ], Timestamp: s.timestamp, Data: string(s.data), Properties: nonNilMap(s.props)}
}

// versionResponse is Pulsar's PostSchemaResponse and DeleteSchemaResponse.
type versionResponse struct {
	Version struct {
		Version int64 `json:"version"`
	} `json:"version"`
}

func schemaTopic(r *http.Request) (topicName, error) {
	return parseTopic("persistent://" + r.PathValue("tenant") + "/" + r.PathValue("ns") + "/" + r.PathValue("topic"))
}

func (a *admin) getSchema(w http.ResponseWriter, r *http.Request) error {
	tn, err := schemaTopic(r)
	if err != nil {
		return err
	}
	v, latest := 0, true
	if vs := r.PathValue("version"); vs != "" {
		n, err := strconv.Atoi(vs)
		if err != nil {
			return httpErrf(http.StatusBadRequest, "schema version %q is not an integer", vs)
		}
		v, latest = n, false
	}
	s, v, err := a.s.schemas.get(tn, v, latest)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toResponse(s, v))
	return nil
}

func (a *admin) getAllSchemas(w http.ResponseWriter, r *http.Request) error {
	tn, err := schemaTopic(r)
	if err != nil {
		return err
	}
	all := a.s.schemas.all(tn)
	if len(all) == 0 {
		return httpErr(http.StatusNotFound, reasonSchemaNotFound)
	}
	out := struct {
		Schemas []schemaResponse `json:"getSchemaResponses"`
	}{}
	for v, s := range all {
		out.Schemas = append(out.Schemas, toResponse(s, v))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// postSchema registers a schema sent as Pulsar's PostSchemaPayload
// {"type","schema","properties"}.
func (a *admin) postSchema(w http.ResponseWriter, r *http.Request) error {
	tn, err := schemaTopic(r)
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var payload struct {
		Type       string            `json:"type"`
		Schema     string            `json:"schema"`
		Properties map[string]string `json:"properties"`
	}
	if err := json.Unmarshal(b, &payload); err != nil {
		return httpErrf(http.StatusBadRequest, "bad schema payload: %v", err)
	}
	typ, ok := schemaTypeByName(payload.Type)
	if !ok {
		return httpErrf(http.StatusBadRequest, "unknown schema type %q", payload.Type)
	}
	if len(payload.Properties) == 0 {
		payload.Properties = nil
	}
	v, err := a.s.schemas.add(tn, &storedSchema{name: tn.local, typ: typ, data: []byte(payload.Schema),
		props: payload.Properties, timestamp: a.s.clock.Now().UnixMilli()})
	if err != nil {
		return err
	}
	var resp versionResponse
	if v != nil {
		n, _, _ := decodeSchemaVersion(v)
		resp.Version.Version = int64(n)
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (a *admin) deleteSchema(w http.ResponseWriter, r *http.Request) error {
	tn, err := schemaTopic(r)
	if err != nil {
		return err
	}
	n := a.s.schemas.drop(tn)
	if n == 0 {
		return httpErr(http.StatusNotFound, reasonSchemaNotFound)
	}
	var resp versionResponse
	resp.Version.Version = int64(n - 1)
	writeJSON(w, http.StatusOK, resp)
	return nil
}
