//! Fault tickets: open → acknowledged → resolved → closed, dedupe, rework,
//! deadlines; ticket figures (issue #3).
