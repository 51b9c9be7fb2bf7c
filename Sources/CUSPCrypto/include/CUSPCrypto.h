// The module's umbrella header: every header of CUSPCrypto, listed, so that adding one is a change
// the compiler's module cache notices (an umbrella directory is not rescanned by an existing cache).
#include "usp_aead.h"
#include "usp_elligator.h"
