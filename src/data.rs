//! Call-time data: JSON ↔ tensors, and validation. (STUB: replaced by the runtime work.)
