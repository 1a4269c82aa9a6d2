//! Traffic targets to weighted revision splits and tag routes. (In progress.)
