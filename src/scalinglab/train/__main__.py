from scalinglab.train.run import main

main()
