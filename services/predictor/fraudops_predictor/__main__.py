from fraudops_predictor.server import main

main()
