"""The helpdesk's domain and storage: tickets, messages, threading; no sockets."""
