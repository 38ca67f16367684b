package minipulsar

import "net/http"

func (s *Server) adminHandler() http.Handler {
	return http.NewServeMux()
}
