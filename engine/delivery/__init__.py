"""From a ledger row to a message on the wire: the dispatcher, composing (template variables,
rendering, envelope), unsubscribe tokens, and the mail transports."""
