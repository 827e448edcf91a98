package envelope_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log"
	"strings"
	"time"

	"github.com/hsmenv/hsmenv/envelope"
	"github.com/hsmenv/hsmenv/envelope/rawaes"
)

// exampleKEK is a software AES key: in real use, a KEK from hsm.OpenURI or
// tpm.OpenURI (or resolver.OpenKEK for any key URI).
func exampleKEK() envelope.KEK {
	key := make([]byte, 32)
	rand.Read(key)
	kek, err := rawaes.New("demo", "k1", key)
	if err != nil {
		log.Fatal(err)
	}
	return kek
}

// One KEK, one message in memory.
func ExampleEncrypt() {
	ctx := context.Background()
	kr := envelope.NewKeyring(exampleKEK())
	ec := envelope.EncryptionContext{"purpose": "example"}

	msg, err := envelope.Encrypt(ctx, []byte("hello"), kr, envelope.EncryptOptions{Context: ec})
	if err != nil {
		log.Fatal(err)
	}
	pt, h, err := envelope.Decrypt(ctx, msg, kr, envelope.DecryptOptions{RequiredContext: ec})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, suite %s, %d EDK\n", pt, h.Suite, len(h.EDKs))
	// Output: hello, suite 0478, 1 EDK
}

// Streams of any size, in constant memory, on all cores.
func ExampleNewEncrypter() {
	ctx := context.Background()
	kr := envelope.NewKeyring(exampleKEK(), exampleKEK()) // either KEK opens the message
	var sealed bytes.Buffer

	enc, err := envelope.NewEncrypter(ctx, &sealed, kr, envelope.EncryptOptions{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(enc, strings.NewReader("a stream of any size")); err != nil {
		log.Fatal(err)
	}
	if err := enc.Close(); err != nil { // writes the final frame
		log.Fatal(err)
	}

	dec, err := envelope.NewDecrypter(ctx, &sealed, kr, envelope.DecryptOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer dec.Close()
	pt, err := io.ReadAll(dec) // every byte returned is authenticated
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s (%d EDKs)\n", pt, len(dec.Header().EDKs))
	// Output: a stream of any size (2 EDKs)
}

// Many small messages, one KEK call: the data key is reused within limits.
func ExampleNewCachingKeyring() {
	ctx := context.Background()
	kr, err := envelope.NewCachingKeyring(envelope.CacheOptions{MaxAge: 5 * time.Minute, MaxMessages: 1000}, exampleKEK())
	if err != nil {
		log.Fatal(err)
	}
	for i := range 100 {
		if _, err := envelope.Encrypt(ctx, fmt.Appendf(nil, "record %d", i), kr, envelope.EncryptOptions{}); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(kr.Stats().DeviceCalls, "KEK call for", kr.Stats().EncryptHits+kr.Stats().EncryptMisses, "messages")
	// Output: 1 KEK call for 100 messages
}
