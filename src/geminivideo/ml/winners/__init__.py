"""Winner index: who is a winner, creative DNA, MiniLM embeddings and the FAISS index."""
