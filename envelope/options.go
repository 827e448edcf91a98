package envelope

import (
	"fmt"
	"io"
	"runtime"
)

// DefaultFrameSize is the plaintext length of each frame unless the caller
// chooses another. 64 KiB measured as the point past which larger frames no
// longer speed up bulk encryption on this project's machines, while a 4 KiB
// ranged read still costs at most two frames (see docs/benchmarks.md).
const DefaultFrameSize = 64 << 10

// DefaultMaxFrameSize bounds the frame length a decrypter accepts from a
// header, because each worker holds whole frames in memory.
const DefaultMaxFrameSize = 16 << 20

// DefaultMaxEncryptedDataKeys bounds how many EDKs a message may carry,
// on encrypt and decrypt, unless the caller sets another bound.
const DefaultMaxEncryptedDataKeys = 64

// CommitmentPolicy says whether messages must use key-committing suites.
type CommitmentPolicy int

const (
	// RequireEncryptRequireDecrypt encrypts with committing suites and
	// decrypts only messages that use one. It is the default.
	RequireEncryptRequireDecrypt CommitmentPolicy = iota
	// RequireEncryptAllowDecrypt encrypts with committing suites and also
	// decrypts legacy (v1) messages.
	RequireEncryptAllowDecrypt
	// ForbidEncryptAllowDecrypt is the ESDK's policy for writing legacy
	// messages. hsmenv never writes them: encrypting under it fails.
	ForbidEncryptAllowDecrypt
)

func (p CommitmentPolicy) String() string {
	switch p {
	case RequireEncryptRequireDecrypt:
		return "REQUIRE_ENCRYPT_REQUIRE_DECRYPT"
	case RequireEncryptAllowDecrypt:
		return "REQUIRE_ENCRYPT_ALLOW_DECRYPT"
	case ForbidEncryptAllowDecrypt:
		return "FORBID_ENCRYPT_ALLOW_DECRYPT"
	}
	return fmt.Sprintf("CommitmentPolicy(%d)", int(p))
}

// EncryptOptions configures encryption. The zero value is valid: suite
// 0x0478, 64 KiB frames, empty context, all cores.
type EncryptOptions struct {
	// Suite is SuiteCommit (default) or SuiteCommitECDSA.
	Suite SuiteID
	// FrameSize is the plaintext length of each frame, 1 to DefaultMaxFrameSize.
	FrameSize int
	// Context is bound to the message as AAD and stored in its header.
	// Keys starting with "aws-crypto-" are reserved.
	Context EncryptionContext
	// RequiredContextKeys lists keys of Context whose pairs are bound to
	// the message (the KEKs and the header authentication see them) but
	// not stored in it, as the ESDK's required encryption context CMM
	// does: whoever decrypts must give those pairs in
	// DecryptOptions.ReproducedContext.
	RequiredContextKeys []string
	// Policy must allow encryption with committing suites.
	Policy CommitmentPolicy
	// MaxEncryptedDataKeys fails encryption when the keyring produces more
	// EDKs. Zero means DefaultMaxEncryptedDataKeys, negative means no bound.
	MaxEncryptedDataKeys int
	// Concurrency is the number of frames encrypted at once; zero means
	// GOMAXPROCS.
	Concurrency int
	// PlaintextSize is the message size if known in advance, else zero or
	// negative; caching keyrings use it to enforce byte limits.
	PlaintextSize int64
}

// DecryptOptions configures decryption. The zero value is valid.
type DecryptOptions struct {
	// RequiredContext lists pairs that the message's context (stored or
	// reproduced) must contain with the same values.
	RequiredContext EncryptionContext
	// ReproducedContext is the encryption context the caller supplies, as
	// the ESDK's decrypt input does: a pair the message stores must have
	// the same value here; a pair it does not store is taken from here and
	// authenticated with the header, so the pairs a message was encrypted
	// with under EncryptOptions.RequiredContextKeys must be given.
	ReproducedContext EncryptionContext
	// Policy says whether legacy, non-committing messages are accepted.
	Policy CommitmentPolicy
	// MaxEncryptedDataKeys rejects messages with more EDKs before any is
	// read. Zero means DefaultMaxEncryptedDataKeys, negative means no bound.
	MaxEncryptedDataKeys int
	// MaxFrameSize rejects messages whose frames (or non-framed body) are
	// larger. Zero means DefaultMaxFrameSize.
	MaxFrameSize int
	// Concurrency is the number of frames decrypted at once; zero means
	// GOMAXPROCS.
	Concurrency int
}

func maxEDKs(n int) int {
	switch {
	case n == 0:
		return DefaultMaxEncryptedDataKeys
	case n < 0:
		return 0
	}
	return n
}

// viewer is an io.ReaderAt that lends its bytes in place: a memory-mapped
// file (internal/mmapfile). The bulk paths (Encrypter.ReadFromAt,
// DecryptAt, OpenRange) seal and open straight from such views instead of
// copying into their buffers. View's bytes stay valid until release; Guard
// runs code that touches them and turns a fault (a file truncated while
// mapped) into an error.
type viewer interface {
	io.ReaderAt
	View(off int64, n int) (b []byte, release func(), err error)
	Guard(fn func() error) error
}

// maxFrameSize is the frame (or non-framed body) length opts allow.
func maxFrameSize(opts DecryptOptions) int {
	if opts.MaxFrameSize <= 0 {
		return DefaultMaxFrameSize
	}
	return opts.MaxFrameSize
}

func workers(n int) int {
	if n <= 0 {
		return runtime.GOMAXPROCS(0)
	}
	return n
}

// Job sizes: a pipeline job holds whole frames of about batchBytes of
// content, so channel traffic stays small next to the AES work. Jobs that
// read a memory-mapped file hold about mappedBatchBytes: with no copy into
// job buffers, larger jobs measured faster there (open 3553 -> 4326 MB/s,
// seal 3112 -> 3182 MB/s on the 2-vCPU development VM), while copying
// (pread) jobs measured slower (2939 -> 2476 MB/s seal).
const (
	batchBytes       = 256 << 10
	mappedBatchBytes = 1 << 20
)

// batchFrames is how many frames of frameLen bytes make a job of about
// batch bytes: at least one.
func batchFrames(frameLen, batch int) int {
	return max(1, batch/frameLen)
}

// pipelineMemory bounds the bytes of job buffers one pipeline holds, so that
// memory is fixed in bytes whatever the frame size (which a message's
// sender chooses, up to MaxFrameSize) and the core count: 16 MiB frames on
// 16 cores would otherwise hold 34 jobs of 32 MiB each.
const pipelineMemory = 32 << 20

// mappedViewMemory bounds the bytes of a memory-mapped input that the
// encrypter's workers seal from at once (each holds one job's view).
const mappedViewMemory = 16 << 20

// pipelineShape returns the workers and the number of jobs in flight for
// jobs of jobBytes each: 2*workers+2 jobs (every worker busy while the
// producer fills one job and the consumer drains another), fewer when they
// would pass pipelineMemory, but never fewer than minDepth (the encrypter
// holds two jobs at once: the last one is only sealed by Close); workers
// are cut to the jobs there are.
func pipelineShape(workers, jobBytes, minDepth int) (int, int) {
	depth := 2*workers + 2
	if jobBytes > 0 {
		depth = min(depth, pipelineMemory/jobBytes)
	}
	depth = max(depth, minDepth, 1)
	return min(workers, depth), depth
}
