//! Pure span model: turns OTLP spans of any GenAI convention into one canonical
//! row, validates declared JSON outputs, and prices calls. No IO lives here.

pub mod span;
