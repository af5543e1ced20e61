"""The lifecycle twin of each patient: real-time supervision, diagnosis rules, clinicians' views."""
