/**
 * A port nothing listens on, for "connection refused": 2. Below 1024, so no server of another test running beside
 * this one can be handed it. A port freePort picks and lets go of can be (CI once found a test's server answering
 * there with HTTP 400). Not 1: fetch refuses to ask it at all (a "bad port").
 */
export const CLOSED_PORT = 2;
