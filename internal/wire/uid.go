package wire

// ValidUID reports whether s is a uid in the canonical form the sidecar
// writes (produce.NewUID, produce.KeyedUID): 8-4-4-4-12 lower-case hex
// digits. The delay API and the console refuse anything else before they
// touch Redis.
func ValidUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}
