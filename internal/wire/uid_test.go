package wire

import "testing"

func TestValidUID(t *testing.T) {
	for s, want := range map[string]bool{
		"01a1fe6b-9473-7e22-9d4f-3d7c230592fe":  true,
		"9197dc95-0609-5123-9e0a-edbe9c41e35c":  true,
		"01A1FE6B-9473-7E22-9D4F-3D7C230592FE":  false, // upper case
		"01a1fe6b94737e229d4f3d7c230592fe":      false, // no dashes
		"01a1fe6b-9473-7e22-9d4f-3d7c230592f":   false, // short
		"01a1fe6b-9473-7e22-9d4f-3d7c230592feX": false,
		"01a1fe6b-9473-7e22-9d4f_3d7c230592fe":  false,
		"01a1fe6g-9473-7e22-9d4f-3d7c230592fe":  false,
		"":                                      false,
	} {
		if got := ValidUID(s); got != want {
			t.Errorf("ValidUID(%q) = %v, want %v", s, got, want)
		}
	}
}
