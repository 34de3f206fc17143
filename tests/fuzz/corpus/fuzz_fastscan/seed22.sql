select	afromt
