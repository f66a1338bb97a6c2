//! The model without a socket: frames built by hand, fed in order.
