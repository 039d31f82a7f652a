//! IKE SA and CHILD SA state.
