package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc/status"

	"github.com/fernet-sidecar/fernet-sidecar/client"
)

func Example() {
	c, err := client.Dial("localhost:50051") // or "unix:///run/fernet/fernet.sock"
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	enc, err := c.Encrypt(ctx, []byte("JBSWY3DPEHPK3PXP"))
	if err != nil {
		log.Fatal(err)
	}
	dec, err := c.Decrypt(ctx, enc.Token, client.WithTTL(24*time.Hour))
	switch {
	case errors.Is(err, client.ErrExpired):
		fmt.Println("older than a day")
	case errors.Is(err, client.ErrInvalidToken):
		fmt.Println("not a token our keys made:", err)
	case err != nil:
		// Not about the token: the sidecar is down, or the deadline passed.
		log.Fatalf("sidecar: %v (code %v)", err, status.Code(err))
	default:
		fmt.Printf("%s, made at %d by key %s\n", dec.Plaintext, dec.Timestamp, dec.KeyID)
	}
}

func ExampleClient_ReEncryptBatch() {
	c, err := client.Dial("unix:///run/fernet/fernet.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	tokens := []string{ /* a page of rows */ }
	results, err := c.ReEncryptBatch(context.Background(), tokens)
	if err != nil {
		log.Fatal(err) // the call failed as a whole: nothing was rotated
	}
	for i, r := range results {
		switch {
		case r.Err != nil:
			log.Printf("row %d: %v", i, r.Err) // errors.Is(r.Err, client.ErrInvalidSignature), ...
		case r.Changed:
			// store r.Token in row i
		}
	}
}

// A login's second factor, with the secret kept in the sidecar: the app
// stores the token and the last counter, never the secret.
func ExampleClient_VerifyTOTP() {
	c, err := client.Dial("unix:///run/fernet/fernet.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	var storedToken string        // the user's TOTP token, from CreateTOTP at enrolment
	var storedLastCounter *uint64 // nil until the first valid code
	result, err := c.VerifyTOTP(ctx, client.TOTPVerifyRequest{Token: storedToken, Code: "123456", LastCounter: storedLastCounter})
	switch {
	case err != nil:
		log.Fatal(err) // the token does not decrypt, or the sidecar is down
	case result.Valid():
		storedLastCounter = &result.Counter // store it with the user: the code cannot be used again
	default:
		fmt.Println("refused:", result.Outcome) // INVALID_CODE or REPLAYED
	}
}
