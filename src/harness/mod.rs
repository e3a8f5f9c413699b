//! Real-Redis harness (under construction).
