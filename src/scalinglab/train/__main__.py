from scalinglab.train.cli import main

main()
