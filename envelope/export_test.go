package envelope

// DecrypterBufferBytes returns the most memory the job buffers of d's
// pipeline take (tests of the byte bound).
func DecrypterBufferBytes(d *Decrypter) int { return d.p.bufBytes }

// EncrypterBufferBytes is DecrypterBufferBytes for an Encrypter whose
// pipeline has started (0 before).
func EncrypterBufferBytes(e *Encrypter) int {
	if e.p == nil {
		return 0
	}
	return e.p.bufBytes
}

// DeriveKeys exposes the key schedule of a suite for benchmarks.
func DeriveKeys(id SuiteID, dek, messageID []byte) (contentKey, commitKey []byte, err error) {
	s, err := lookupSuite(id)
	if err != nil {
		return nil, nil, err
	}
	return s.deriveKeys(dek, messageID)
}
