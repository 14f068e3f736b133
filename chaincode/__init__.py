"""fedspec: chaincode."""
