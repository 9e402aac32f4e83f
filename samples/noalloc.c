// Never allocates: the trace must still be valid, with no events of its own.
int main(void) { return 0; }
