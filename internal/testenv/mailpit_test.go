package testenv_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jax-mba/mba/internal/mail"
	"github.com/jax-mba/mba/internal/testenv"
)

// TestMailpitReadsWhatSMTPDelivered: a message through the real SMTP sender arrives in
// Mailpit with its subject, recipient and body, and a second Mailpit (another test) does not
// see it.
func TestMailpitReadsWhatSMTPDelivered(t *testing.T) {
	mp := testenv.NewMailpit(t)
	other := testenv.NewMailpit(t)
	require.NoError(t, mp.Sender().Send(context.Background(), mail.Message{To: "Ann <ann@lab.example>",
		Subject: "Grüße from the lab", Body: "line one\nhttps://ui.lab.example/reset/1/abc\n"}))

	msgs := mp.WaitForMessages("ann@lab.example", 1)
	require.Len(t, msgs, 1)
	require.Equal(t, "Grüße from the lab", msgs[0].Subject)
	require.Equal(t, "ann@lab.example", msgs[0].To[0].Address)
	require.Contains(t, msgs[0].Text, "https://ui.lab.example/reset/1/abc")
	require.Empty(t, mp.Messages("bob@lab.example"))
	require.Empty(t, other.Messages(""), "each test reads only its own mail")
}
