"""Generation: templated few-shot requests to an LLM, journaled and cached, parsed into review candidates."""
