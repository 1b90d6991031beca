from agriseg.sampledata.samples import main

main()
